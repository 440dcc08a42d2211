//! SIGINT and SIGTERM: a cancelled run leaves no open multipart upload, no
//! temporary file and no partial file, says it was interrupted, and exits
//! 130 or 143 even while its requests are stalled.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::faults::{faulty, Kind};
use crate::support::{data, stalled_pull, temp_files, Store};
use testkit::fault::{Fault, Rule};

const JOB: &str = "artifacts/jobs/job-1";

/// Sends `signal` (`TERM`, `INT`) to the child.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// Waits (bounded) for the child to end; its exit code and stderr.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                err.read_to_string(&mut stderr).unwrap();
            }
            return (status.code(), stderr);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the run did not end after the signal");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn pull_interrupted_by(name: &str, code: i32) {
    let f = faulty(Kind::S3);
    f.env
        .put_object(&format!("{JOB}/big.bin"), &data(2_000_000, 1));
    let mut pull = f.env.command(&["pull", "job", "big.bin"]);
    pull.stdout(Stdio::null()).stderr(Stdio::piped());
    let rule = Rule::any().method("GET").path_contains("/artifacts/");
    let dir = f.env.work.path();
    let child = stalled_pull(&f.proxy, rule, pull, "a temporary file", || {
        !temp_files(dir).is_empty()
    });
    signal(&child, name);
    let (exit, stderr) = finish(child);
    assert_eq!(exit, Some(code), "{stderr}");
    assert!(stderr.contains(&format!("SIG{name}")), "{stderr}");
    assert!(!f.env.path("big.bin").exists(), "a partial file was left");
    assert_eq!(
        temp_files(f.env.work.path()),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn sigterm_during_a_pull_leaves_no_temporary_or_partial_file() {
    pull_interrupted_by("TERM", 143);
}

#[test]
fn sigint_during_a_pull_leaves_no_temporary_or_partial_file() {
    pull_interrupted_by("INT", 130);
}

#[test]
fn sigterm_during_a_multipart_push_leaves_no_open_upload() {
    let f = faulty(Kind::Moto);
    f.env.write("big.bin", &data(16 * 1024 * 1024, 2));
    // Every part hangs: the workers are blocked when the signal comes.
    f.proxy.inject(
        Rule::any()
            .method("PUT")
            .query_contains("partNumber=")
            .times(usize::MAX),
        Fault::Stall(Duration::from_secs(30)),
    );
    let Store::Moto(moto) = &f.env.store else {
        unreachable!()
    };
    let child = f
        .env
        .command(&["push", "job", "big.bin"])
        .env("ARTIFACT_S3_PART_SIZE", "5MiB")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while moto.open_uploads().is_empty() {
        assert!(Instant::now() < deadline, "no multipart upload started");
        thread::sleep(Duration::from_millis(20));
    }
    signal(&child, "TERM");
    let (exit, stderr) = finish(child);
    assert_eq!(exit, Some(143), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert_eq!(moto.open_uploads(), Vec::<String>::new());
    assert!(f.env.object(&format!("{JOB}/big.bin")).is_none());
}

#[test]
fn sigint_during_retries_ends_cleanly_and_reports_what_was_not_transferred() {
    let f = faulty(Kind::S3);
    for i in 0..20 {
        f.env.write(&format!("d/f{i:02}"), &data(1000, i));
    }
    // The fifth PUT and every one after it are refused: workers wait to
    // retry when the signal comes, and must not go on retrying.
    f.proxy.inject(
        Rule::any().method("PUT").skip(4).times(usize::MAX),
        Fault::Status(503),
    );
    let child = f
        .env
        .command(&["push", "job", "d", "--parallel", "2"])
        .env("ARTIFACT_RETRY_ATTEMPTS", "20")
        .env("ARTIFACT_RETRY_DELAY", "2s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.proxy.faults_applied() == 0 {
        assert!(
            Instant::now() < deadline,
            "the push never reached the faults"
        );
        thread::sleep(Duration::from_millis(20));
    }
    signal(&child, "INT");
    let (exit, stderr) = finish(child);
    assert_eq!(exit, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(stderr.contains("of 20 files transferred"), "{stderr}");
    assert!(stderr.contains("not transferred: "), "{stderr}");
    assert!(!stderr.contains("exiting without waiting"), "{stderr}");
}
