"""Loopback servers for `make release-check`.

    servers.py static DIR PORTFILE          plain HTTP file server for DIR (a release mirror)
    servers.py s3 CERT KEY PORTFILE         moto's S3, over TLS

Each binds 127.0.0.1 on a free port, writes the port to PORTFILE once it
accepts connections, and serves until killed. Requests are logged on stderr.
"""

import http.server
import os
import sys


def bind_and_announce(server, portfile):
    port = server.server_address[1]
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, portfile)
    return port


def serve_static(directory, portfile):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    bind_and_announce(server, portfile)
    server.serve_forever()


def serve_s3(cert, key, portfile):
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, ssl_context=(cert, key), request_handler=MotoRequestHandler
    )
    os.environ["MOTO_PORT"] = str(server.server_address[1])
    bind_and_announce(server, portfile)
    server.serve_forever()


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "static" and len(argv) == 4:
        serve_static(argv[2], argv[3])
    elif mode == "s3" and len(argv) == 5:
        serve_s3(*argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
