//! The test Hub of the integration tests, as a process for `make bench`:
//! the Hub API (`POST /api/v1/artifacts`) answers with signed URLs to a
//! storage listener that sleeps `--delay-ms` before answering every request,
//! what a real bucket's first byte costs.
//!
//! Storage lives under `$TMPDIR` (set it to a tmpfs). Prints nothing secret
//! to stdout but what the bench needs: `--env-file` gets the variables for
//! `artifact` (`SEMAPHORE_ORGANIZATION_URL`, `SEMAPHORE_ARTIFACT_TOKEN`).
//! Stops, removing its storage, when standard input closes or on SIGTERM.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use artifact_bench_server::{write_file_atomic, Args};
use testkit::hub::HubServer;

const USAGE: &str = "usage: bench-hub [--delay-ms 20] --env-file FILE

Starts a Hub and its storage on loopback ports; FILE gets shell assignments
of SEMAPHORE_ORGANIZATION_URL and SEMAPHORE_ARTIFACT_TOKEN. Runs until
standard input closes (or SIGTERM/SIGINT).";

fn main() {
    let args = Args::parse(USAGE, &[]);
    args.only(&["delay-ms", "env-file"]);
    let delay = args.delay(20);
    let env_file = args.req("env-file");

    let server = HubServer::start();
    server.set_storage_delay(delay);
    let env = format!(
        "SEMAPHORE_ORGANIZATION_URL={}\nSEMAPHORE_ARTIFACT_TOKEN={}\n",
        server.org_url(),
        server.token()
    );
    write_file_atomic(&env_file, &env).expect("write --env-file");
    eprintln!(
        "bench-hub: Hub at {}, storage delay {} ms, objects in {}",
        server.org_url(),
        delay.as_millis(),
        server.storage_dir().display()
    );

    // Stop on stdin EOF, SIGTERM or SIGINT; Drop removes the storage.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            stop.store(true, Ordering::SeqCst);
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM");
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = tick.tick() => if stop.load(Ordering::SeqCst) { break },
            }
        }
    });
    drop(server);
}
