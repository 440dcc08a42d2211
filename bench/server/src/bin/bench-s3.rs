//! s3s-fs 0.14.1 on loopback, the S3 server of `make bench`.
//!
//! Stock `s3s-fs` (its own binary) never sets TCP_NODELAY, so on a kept-alive
//! connection every small response waits ~40 ms (Nagle against the client's
//! delayed ACK). Real S3 does not do that, and a client must not be shaped
//! around it, so this runs the test kit's s3s-fs server (`testkit::s3::serve`,
//! the one the tests use), which sets TCP_NODELAY on every accepted socket.
//! `--no-nodelay` gives stock behaviour, for the informational column of the
//! bench. `--delay-ms N` holds every request N ms before s3s-fs sees it: a
//! store farther away than loopback (bench-hub's `--delay-ms` does the same
//! for the Hub's storage).
//!
//! Path-style requests only (no virtual-host domain); SigV4 is verified with
//! the one key pair given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use artifact_bench_server::{die, write_file_atomic, Args};
use testkit::s3::Options;

const USAGE: &str = "usage: bench-s3 --root DIR [--port N] [--host 127.0.0.1] \
--access-key K --secret-key S [--no-nodelay] [--delay-ms N] [--port-file FILE] \
[--exit-with-stdin]

Serves the directory DIR as S3 (each bucket is a subdirectory). --port 0 (the
default) picks a free port; --port-file writes the port there once listening;
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
        die(USAGE, &format!("--root {} is not a directory", root.display()));
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
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap_or_else(|e| {
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
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let options = Options {
        root,
        keys: (ak, sk),
        vhost_domain: None,
        nodelay,
        delay,
    };
    testkit::s3::serve(listener, options, stop).await;
}
