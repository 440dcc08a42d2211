"""Loopback servers for `make release-check`.

    servers.py static DIR PORTFILE          plain HTTP file server for DIR (a release mirror)
    servers.py hub CERT KEY TOKEN PORTFILE  the Hub API plus its signed-URL storage, over TLS
    servers.py s3 CERT KEY PORTFILE         moto's S3, over TLS

Each binds 127.0.0.1 on a free port, writes the port to PORTFILE once it
accepts connections, and serves until killed. Requests are logged on stderr.
"""

import http.server
import json
import os
import ssl
import sys
import threading
import urllib.parse


def bind_and_announce(server, portfile):
    port = server.server_address[1]
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, portfile)
    return port


def tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def serve_static(directory, portfile):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    bind_and_announce(server, portfile)
    server.serve_forever()


def serve_hub(cert, key, token, portfile):
    """The Hub protocol of DESIGN.md: POST /api/v1/artifacts answers signed
    URLs, which point back at this server's storage (`/<key>`)."""
    objects = {}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def reply(self, status, body=b"", content_type="application/octet-stream", head=False):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def key(self):
            path = urllib.parse.urlsplit(self.path).path
            return urllib.parse.unquote(path[1:])

        def url(self, k):
            host, port = self.server.server_address[:2]
            return "https://%s:%d/%s?Signature=loopback" % (host, port, urllib.parse.quote(k))

        def do_POST(self):
            data = self.body()
            if urllib.parse.urlsplit(self.path).path != "/api/v1/artifacts":
                return self.reply(404, b"not found")
            if self.headers.get("authorization") != token:
                return self.reply(401, b'{"error":"unauthorized"}', "application/json")
            call = json.loads(data or b"{}")
            kind = call.get("type", 0)
            urls = []
            missing = False
            with lock:
                keys = sorted(objects)
            for p in call.get("paths", []):
                if kind == 0:
                    urls += [{"url": self.url(p), "method": "HEAD"}, {"url": self.url(p), "method": "PUT"}]
                elif kind == 1:
                    urls.append({"url": self.url(p), "method": "PUT"})
                else:
                    p = p.rstrip("/")
                    found = [k for k in keys if p and (k == p or k.startswith(p + "/"))]
                    missing = missing or not found
                    for k in found:
                        urls.append({"url": self.url(k), "method": "GET"} if kind == 2 else {"url": self.url(k)})
            answer = {"urls": [], "error": "path does not exist"} if missing else {"urls": urls, "error": ""}
            self.reply(200, json.dumps(answer).encode(), "application/json")

        def do_HEAD(self):
            with lock:
                obj = objects.get(self.key())
            if obj is None:
                return self.reply(404, head=True)
            self.send_response(200)
            self.send_header("Content-Length", str(len(obj)))
            self.end_headers()

        def do_GET(self):
            with lock:
                obj = objects.get(self.key())
            if obj is None:
                return self.reply(404, b"no such object")
            self.reply(200, obj)

        def do_PUT(self):
            if self.headers.get("Content-Length") is None:
                self.body()
                return self.reply(501, b"Content-Length required")
            data = self.body()
            with lock:
                objects[self.key()] = data
            self.reply(200)

        def do_DELETE(self):
            with lock:
                objects.pop(self.key(), None)
            self.reply(204)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # The handshake happens in the handler's thread, on the first read.
    server.socket = tls_context(cert, key).wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
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
    elif mode == "hub" and len(argv) == 6:
        serve_hub(*argv[2:])
    elif mode == "s3" and len(argv) == 5:
        serve_s3(*argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
