//! s3s-fs 0.14.1 on loopback, the S3 server of `make bench`.
//!
//! Stock `s3s-fs` (its own binary) never sets TCP_NODELAY, so on a kept-alive
//! connection every small response waits ~40 ms (Nagle against the client's
//! delayed ACK). Real S3 does not do that, and a client must not be shaped
//! around it, so this runs the `s3s-fs` library behind an accept loop of its
//! own that sets TCP_NODELAY on every accepted socket. `--no-nodelay` gives
//! stock behaviour, for the informational column of the bench.
//!
//! `--delay-ms N` holds every request N ms before s3s-fs sees it: a store
//! farther away than loopback (bench-hub's `--delay-ms` does the same for the
//! Hub's storage). The wait is a timer, so delayed requests overlap freely,
//! as they would on a network.
//!
//! Path-style requests only (no virtual-host domain); SigV4 is verified with
//! the one key pair given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use artifact_bench_server::{die, write_file_atomic, Args};
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

const USAGE: &str = "usage: bench-s3 --root DIR [--port N] [--host 127.0.0.1] \
--access-key K --secret-key S [--no-nodelay] [--delay-ms N] [--port-file FILE] \
[--exit-with-stdin]

Serves the directory DIR as S3 (each bucket is a subdirectory). --port 0 (the
default) picks a free port; --delay-ms (default 0) holds every request N ms
before serving it; --port-file writes the port there once listening;
--exit-with-stdin stops the server when its standard input closes (so it
never outlives the script that started it).";

fn main() {
    let args = Args::parse(USAGE, &["no-nodelay", "exit-with-stdin"]);
    args.only(&[
        "root",
        "port",
        "host",
        "access-key",
        "secret-key",
        "no-nodelay",
        "delay-ms",
        "port-file",
        "exit-with-stdin",
    ]);
    if args.flag("exit-with-stdin") {
        std::thread::spawn(|| {
            use std::io::Read;
            let mut buf = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
    }
    let root = PathBuf::from(args.req("root"));
    let host = args.opt("host").unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = args.num("port", 0);
    let (ak, sk) = (args.req("access-key"), args.req("secret-key"));
    let nodelay = !args.flag("no-nodelay");
    let delay = args.delay(0);
    let port_file = args.opt("port-file");

    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .unwrap_or_else(|_| die(USAGE, &format!("bad --host/--port: {host}:{port}")));
    if !root.is_dir() {
        die(
            USAGE,
            &format!("--root {} is not a directory", root.display()),
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(serve(root, addr, ak, sk, nodelay, delay, port_file));
}

async fn serve(
    root: PathBuf,
    addr: SocketAddr,
    ak: String,
    sk: String,
    nodelay: bool,
    delay: Duration,
    port_file: Option<String>,
) {
    let fs = s3s_fs::FileSystem::new(&root).unwrap_or_else(|e| {
        eprintln!("bench-s3: s3s-fs on {}: {e:?}", root.display());
        std::process::exit(1)
    });
    let service = {
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(ak, sk));
        b.build()
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| {
            eprintln!("bench-s3: cannot listen on {addr}: {e}");
            std::process::exit(1)
        });
    let local = listener.local_addr().expect("local addr");
    if let Some(f) = &port_file {
        write_file_atomic(f, &format!("{}\n", local.port())).expect("write --port-file");
    }
    eprintln!(
        "bench-s3: s3s-fs 0.14.1 at http://{local}, root {}, TCP_NODELAY {}, delay {} ms",
        root.display(),
        if nodelay { "on" } else { "off (stock)" },
        delay.as_millis()
    );
    let http = ConnBuilder::new(TokioExecutor::new());
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    eprintln!("bench-s3: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        if nodelay {
            let _ = socket.set_nodelay(true);
        }
        let service = service.clone();
        let delayed = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let service = service.clone();
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Service::call(&service, req).await
            }
        });
        let conn = http
            .serve_connection(TokioIo::new(socket), delayed)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
