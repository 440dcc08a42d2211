//! Faults between the binary and the store, injected by a proxy: throttling,
//! server errors, resets before and during bodies, short and corrupt
//! bodies, stalls. Each case ends in one of two ways: success with the
//! exact bytes, or a clear failure with a non-zero exit — and either way
//! nothing half-written at the local destination and no multipart upload
//! left open in the store.

use std::time::Duration;

use crate::support::{data, Run, Store, TestEnv};
use testkit::fault::{Fault, FaultProxy, Gate, Quirks, RetryAfter, Rule};

const JOB: &str = "artifacts/jobs/job-1";
const FOREVER: usize = usize::MAX;

/// A test env whose storage traffic goes through a fault proxy.
pub struct Faulty {
    pub env: TestEnv,
    pub proxy: FaultProxy,
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Hub,
    S3,
    Moto,
    Rgw,
}

pub fn faulty(kind: Kind) -> Faulty {
    let mut env = match kind {
        Kind::Hub => TestEnv::hub(),
        Kind::S3 => TestEnv::s3(),
        Kind::Moto => TestEnv::moto(),
        Kind::Rgw => TestEnv::rgw(),
    };
    let proxy = env.fault_proxy(Quirks::default());
    Faulty { env, proxy }
}

impl Faulty {
    fn inject(&self, rule: Rule, fault: Fault) {
        self.proxy.inject(rule, fault);
    }

    /// Nothing but `expected` (names) is in the work dir: no partial files,
    /// no temporary files.
    #[track_caller]
    fn work_dir_holds(&self, expected: &[&str]) {
        let mut names: Vec<String> = std::fs::read_dir(self.env.work.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(names, want, "work dir");
    }

    #[track_caller]
    fn no_open_uploads(&self) {
        match &self.env.store {
            Store::Moto(m) => assert_eq!(
                m.open_uploads(),
                Vec::<String>::new(),
                "open multipart uploads"
            ),
            Store::Rgw(r) => assert_eq!(
                r.open_uploads(),
                Vec::<String>::new(),
                "open multipart uploads"
            ),
            Store::S3(s) => assert_eq!(
                s.upload_leftovers(),
                Vec::<std::path::PathBuf>::new(),
                "multipart leftovers"
            ),
            _ => {}
        }
    }
}

fn puts() -> Rule {
    Rule::any().method("PUT")
}

fn object_gets() -> Rule {
    Rule::any().method("GET").path_contains("/artifacts/")
}

#[track_caller]
fn failed(run: &Run) {
    assert_ne!(run.code, 0, "expected a failure\n{run}");
    assert!(run.stderr.contains("Error p"), "no error line\n{run}");
}

/// Runs the body once per store named: `fault_case!(name, [hub, s3s_fs, moto], |f| { … })`.
macro_rules! fault_case {
    ($name:ident, [$($kind:ident),+], |$f:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $kind() {
                    let $f = faulty(kind_named(stringify!($kind)));
                    $body
                }
            )+
        }
    };
    ($name:ident, |$f:ident| $body:block) => {
        fault_case!($name, [hub, s3s_fs, moto], |$f| $body);
    };
}

fn kind_named(name: &str) -> Kind {
    match name {
        "hub" => Kind::Hub,
        "s3s_fs" => Kind::S3,
        "rgw" => Kind::Rgw,
        _ => Kind::Moto,
    }
}

// ---- push of one file -------------------------------------------------

fault_case!(push_survives_503s, |f| {
    f.env.write("f.bin", &data(200_000, 1));
    f.inject(puts().times(2), Fault::Status(503));
    f.env.run(&["push", "job", "f.bin"]).success();
    assert_eq!(
        f.env.object(&format!("{JOB}/f.bin")).unwrap(),
        data(200_000, 1)
    );
    assert_eq!(f.proxy.faults_applied(), 2);
});

fault_case!(push_survives_500_and_429, |f| {
    f.env.write("f.bin", &data(1000, 2));
    f.inject(puts().times(1), Fault::Status(500));
    f.inject(puts().times(1), Fault::Status(429));
    f.env.run(&["push", "job", "f.bin"]).success();
    assert_eq!(
        f.env.object(&format!("{JOB}/f.bin")).unwrap(),
        data(1000, 2)
    );
});

// A store that names the moment to come back (`Retry-After` as an
// HTTP-date, three seconds on) is waited for, and the push goes through.
fault_case!(a_503_with_a_retry_after_date_is_waited_out, |f| {
    f.env.write("f.bin", &data(1000, 22));
    f.inject(
        puts().times(1),
        Fault::StatusRetryAfter(503, RetryAfter::DateIn(3)),
    );
    let mut push = f.env.command(&["push", "job", "f.bin", "-v"]);
    push.env("ARTIFACT_RETRY_DELAY", "10ms");
    f.env
        .run_cmd(push, None)
        .success()
        .stderr_has(", as its Retry-After asked (attempt 2 of 5)");
    assert_eq!(
        f.env.object(&format!("{JOB}/f.bin")).unwrap(),
        data(1000, 22)
    );
    assert_eq!(f.proxy.faults_applied(), 1);
});

fault_case!(push_survives_a_reset_before_the_answer, |f| {
    // The first PUT reaches the store but its answer is lost: the retry
    // meets its own object (a conditional PUT on S3) and succeeds.
    f.env.write("f.bin", &data(50_000, 3));
    f.inject(puts().times(1), Fault::ResetBeforeResponse);
    f.env.run(&["push", "job", "f.bin"]).success();
    assert_eq!(
        f.env.object(&format!("{JOB}/f.bin")).unwrap(),
        data(50_000, 3)
    );
});

fault_case!(push_survives_a_reset_during_the_upload, |f| {
    f.env.write("f.bin", &data(300_000, 4));
    f.inject(puts().times(1), Fault::ResetDuringUpload);
    f.env.run(&["push", "job", "f.bin"]).success();
    assert_eq!(
        f.env.object(&format!("{JOB}/f.bin")).unwrap(),
        data(300_000, 4)
    );
});

fault_case!(push_survives_a_stall_longer_than_the_timeout, |f| {
    f.env.write("f.bin", &data(10_000, 5));
    f.inject(puts().times(1), Fault::Stall(Duration::from_secs(8)));
    let mut push = f.env.command(&["push", "job", "f.bin"]);
    push.env("ARTIFACT_IO_TIMEOUT", "2");
    f.env.run_cmd(push, None).success();
    assert_eq!(
        f.env.object(&format!("{JOB}/f.bin")).unwrap(),
        data(10_000, 5)
    );
});

fault_case!(push_fails_clearly_when_503_never_ends, |f| {
    f.env.write("f.bin", &data(1000, 6));
    f.inject(puts().times(FOREVER), Fault::Status(503));
    let run = f.env.run(&["push", "job", "f.bin"]);
    run.failure(1).stderr_has("503");
    assert!(f.env.object(&format!("{JOB}/f.bin")).is_none());
    let puts_seen = f.proxy.seen().iter().filter(|s| s.method == "PUT").count();
    assert_eq!(puts_seen, 5, "5 attempts");
});

// ---- push of a directory ----------------------------------------------

fault_case!(directory_push_survives_scattered_faults, |f| {
    for i in 0..12 {
        f.env.write(&format!("d/f{i}"), &data(5000 + i, i as u8));
    }
    f.inject(puts().skip(2).times(1), Fault::Status(500));
    f.inject(puts().skip(5).times(1), Fault::ResetDuringUpload);
    f.inject(puts().skip(8).times(1), Fault::ResetBeforeResponse);
    f.env
        .run(&["push", "job", "d"])
        .success()
        .stderr_has("Pushed 12 files.");
    for i in 0..12 {
        assert_eq!(
            f.env.object(&format!("{JOB}/d/f{i}")).unwrap(),
            data(5000 + i, i as u8)
        );
    }
});

fault_case!(directory_push_says_what_did_not_arrive, |f| {
    for i in 0..6 {
        f.env.write(&format!("d/f{i}"), b"x");
    }
    f.inject(
        puts().path_contains("/d/f3").times(FOREVER),
        Fault::Status(503),
    );
    let run = f.env.run(&["push", "job", "d", "--parallel", "1"]);
    run.failure(1)
        .stderr_has("files transferred; not transferred:")
        .stderr_has("d/f3");
    assert!(f.env.object(&format!("{JOB}/d/f3")).is_none());
});

// ---- pull of one file -------------------------------------------------

fault_case!(pull_survives_503s, |f| {
    f.env.put_object(&format!("{JOB}/p.bin"), &data(100_000, 7));
    f.inject(object_gets().times(2), Fault::Status(503));
    f.env.run(&["pull", "job", "p.bin"]).success();
    assert_eq!(f.env.read("p.bin"), data(100_000, 7));
    f.work_dir_holds(&["p.bin"]);
});

fault_case!(pull_survives_a_reset_during_the_download, |f| {
    f.env.put_object(&format!("{JOB}/p.bin"), &data(400_000, 8));
    f.inject(object_gets().times(1), Fault::ResetDuringDownload(50));
    f.env.run(&["pull", "job", "p.bin"]).success();
    assert_eq!(f.env.read("p.bin"), data(400_000, 8));
    f.work_dir_holds(&["p.bin"]);
});

fault_case!(pull_retries_a_short_body, |f| {
    f.env.put_object(&format!("{JOB}/p.bin"), &data(100_000, 9));
    f.inject(object_gets().times(1), Fault::ShortBody);
    f.env.run(&["pull", "job", "p.bin"]).success();
    assert_eq!(f.env.read("p.bin"), data(100_000, 9));
});

fault_case!(pull_fails_cleanly_when_bodies_stay_short, |f| {
    f.env
        .put_object(&format!("{JOB}/p.bin"), &data(100_000, 10));
    f.inject(object_gets().times(FOREVER), Fault::ShortBody);
    let run = f.env.run(&["pull", "job", "p.bin"]);
    run.failure(1);
    failed(&run);
    f.work_dir_holds(&[]);
});

fault_case!(pull_fails_cleanly_on_a_stalled_store, |f| {
    f.env.put_object(&format!("{JOB}/p.bin"), &data(1000, 11));
    f.inject(
        object_gets().times(FOREVER),
        Fault::Stall(Duration::from_secs(8)),
    );
    let mut env_attempts = f.env.command(&["pull", "job", "p.bin"]);
    env_attempts
        .env("ARTIFACT_RETRY_ATTEMPTS", "2")
        .env("ARTIFACT_IO_TIMEOUT", "2");
    let run = f.env.run_cmd(env_attempts, None);
    run.failure(1)
        .stderr_has("no byte for 2.0 s (ARTIFACT_IO_TIMEOUT)");
    failed(&run);
    f.work_dir_holds(&[]);
});

fault_case!(pull_keeps_the_previous_file_when_it_fails, |f| {
    f.env.put_object(&format!("{JOB}/p.bin"), &data(50_000, 12));
    f.env.write("p.bin", b"previous complete version");
    f.inject(object_gets().times(FOREVER), Fault::ResetDuringDownload(50));
    let run = f.env.run(&["pull", "job", "p.bin", "-f"]);
    failed(&run);
    assert_eq!(f.env.read("p.bin"), b"previous complete version");
    f.work_dir_holds(&["p.bin"]);
});

fault_case!(directory_pull_survives_scattered_faults, |f| {
    for i in 0..10 {
        f.env
            .put_object(&format!("{JOB}/d/f{i}"), &data(3000 + i, i as u8));
    }
    f.inject(
        object_gets().skip(1).times(1),
        Fault::ResetDuringDownload(50),
    );
    f.inject(object_gets().skip(4).times(1), Fault::ShortBody);
    f.inject(object_gets().skip(6).times(1), Fault::Status(500));
    f.env
        .run(&["pull", "job", "d"])
        .success()
        .stderr_has("Pulled 10 files.");
    for i in 0..10 {
        assert_eq!(f.env.read(&format!("d/f{i}")), data(3000 + i, i as u8));
    }
});

// ---- S3 only: throttling, damage, multipart -----------------------------

fault_case!(slowdown_is_retried, [s3s_fs, moto], |f| {
    f.env.write("f.bin", &data(1000, 13));
    f.inject(Rule::any().times(2), Fault::SlowDown);
    f.env.run(&["push", "job", "f.bin"]).success();
    f.env
        .run(&["pull", "job", "f.bin", "-d", "back.bin"])
        .success();
    assert_eq!(f.env.read("back.bin"), data(1000, 13));
});

fault_case!(
    a_corrupted_download_is_an_integrity_error,
    [s3s_fs, moto],
    |f| {
        f.env.write("f.bin", &data(20_000, 14));
        f.env.run(&["push", "job", "f.bin"]).success();
        f.inject(object_gets().times(FOREVER), Fault::CorruptBody);
        f.env
            .run(&["pull", "job", "f.bin", "-d", "back.bin"])
            .failure(7)
            .stderr_has("the data is damaged");
        f.work_dir_holds(&["f.bin"]);
    }
);

fault_case!(a_failing_multipart_upload_is_aborted, [s3s_fs, moto], |f| {
    let mut cmd_env = f.env.command(&["push", "job", "big.bin"]);
    cmd_env.env("ARTIFACT_S3_PART_SIZE", "5MiB");
    f.env.write("big.bin", &data(11 * 1024 * 1024, 15));
    f.inject(
        puts().query_contains("partNumber=2").times(FOREVER),
        Fault::Status(503),
    );
    let run = f.env.run_cmd(cmd_env, None);
    run.failure(1);
    assert!(f.env.object(&format!("{JOB}/big.bin")).is_none());
    assert!(
        f.proxy
            .seen()
            .iter()
            .any(|s| s.method == "DELETE" && s.query().contains("uploadId")),
        "no abort sent"
    );
    f.no_open_uploads();
});

fault_case!(
    a_multipart_upload_survives_part_and_completion_faults,
    [s3s_fs, moto],
    |f| {
        let mut cmd_env = f.env.command(&["push", "job", "big.bin"]);
        cmd_env.env("ARTIFACT_S3_PART_SIZE", "5MiB");
        let big = data(11 * 1024 * 1024, 16);
        f.env.write("big.bin", &big);
        f.inject(
            puts().query_contains("partNumber=1").times(1),
            Fault::ResetDuringUpload,
        );
        f.inject(
            puts().query_contains("partNumber=3").times(1),
            Fault::Status(500),
        );
        // The completion's answer is lost; the retry finds the finished object.
        f.inject(
            Rule::any()
                .method("POST")
                .query_contains("uploadId")
                .times(1),
            Fault::ResetBeforeResponse,
        );
        f.env.run_cmd(cmd_env, None).success();
        assert_eq!(f.env.object(&format!("{JOB}/big.bin")).unwrap(), big);
        f.no_open_uploads();
    }
);

fault_case!(a_listing_cut_short_is_retried, [s3s_fs, moto], |f| {
    for i in 0..5 {
        f.env.put_object(&format!("{JOB}/d/f{i}"), b"x");
    }
    f.inject(
        Rule::any()
            .method("GET")
            .query_contains("list-type")
            .times(1),
        Fault::ShortBody,
    );
    f.env
        .run(&["pull", "job", "d"])
        .success()
        .stderr_has("Pulled 5 files.");
});

/// moto states a composite checksum for multipart objects; the download
/// recomputes it part by part (from the part size our upload recorded).
#[test]
fn a_multipart_object_is_verified_by_its_composite_checksum() {
    let f = faulty(Kind::Moto);
    let mut push = f.env.command(&["push", "job", "big.bin"]);
    push.env("ARTIFACT_S3_PART_SIZE", "5MiB");
    f.env.write("big.bin", &data(11 * 1024 * 1024 + 5, 17));
    f.env.run_cmd(push, None).success();
    let run = f
        .env
        .run(&["pull", "job", "big.bin", "-d", "back.bin", "-v"]);
    run.success();
    assert!(!run.stderr.contains("checked its length only"), "{run}");
    assert_eq!(f.env.read("back.bin"), data(11 * 1024 * 1024 + 5, 17));

    f.inject(object_gets().times(FOREVER), Fault::CorruptBody);
    f.env
        .run(&["pull", "job", "big.bin", "-d", "bad.bin"])
        .failure(7)
        .stderr_has("the data is damaged");
    assert!(!f.env.path("bad.bin").exists());
}

/// A large object comes down in ranges, each with `If-Match`, and is
/// verified whole (moto states its composite checksum on HEAD): one range
/// damaged on the way fails the pull with nothing at the destination.
#[test]
fn a_ranged_download_is_verified_whole() {
    let f = faulty(Kind::Moto);
    let size = 26 * 1024 * 1024 + 9;
    let mut push = f.env.command(&["push", "job", "big.bin"]);
    push.env("ARTIFACT_S3_PART_SIZE", "5MiB");
    f.env.write("big.bin", &data(size, 19));
    f.env.run_cmd(push, None).success();
    let mut pull = f
        .env
        .command(&["pull", "job", "big.bin", "-d", "back.bin", "-v"]);
    pull.env("ARTIFACT_S3_PART_SIZE", "5MiB");
    f.env
        .run_cmd(pull, None)
        .success()
        .stderr_has("downloaded in 6 ranges; SHA-256 verified");
    assert_eq!(f.env.read("back.bin"), data(size, 19));
    let ranges: Vec<_> = f
        .proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.header("range").is_some())
        .collect();
    assert_eq!(ranges.len(), 6);
    assert!(ranges.iter().all(|s| s.header("if-match").is_some()));

    f.inject(
        Rule::any()
            .method("GET")
            .path_contains("big.bin")
            .skip(2)
            .times(1),
        Fault::CorruptBody,
    );
    let mut pull = f.env.command(&["pull", "job", "big.bin", "-d", "bad.bin"]);
    pull.env("ARTIFACT_S3_PART_SIZE", "5MiB");
    f.env
        .run_cmd(pull, None)
        .failure(7)
        .stderr_has("the data is damaged");
    assert!(!f.env.path("bad.bin").exists());
    f.work_dir_holds(&["back.bin", "big.bin"]);
}

// An object replaced (`push -f`) while it is being pulled in ranges is
// never stitched from two versions: the ranges after the replacement carry
// `If-Match` with the first version's ETag (and are checked against it),
// and the pull fails with nothing at the destination. The third range is
// held at the proxy until the replacement is complete, however long that
// takes: were it let go sooner, it would fetch the first version, and the
// pull would rightly succeed with it.
fault_case!(
    an_object_replaced_between_ranges_is_never_stitched,
    [s3s_fs, moto],
    |f| {
        let size = 26 * 1024 * 1024;
        let mut push = f.env.command(&["push", "job", "big.bin"]);
        push.env("ARTIFACT_S3_PART_SIZE", "5MiB");
        f.env.write("big.bin", &data(size, 20));
        f.env.run_cmd(push, None).success();
        let gate = Gate::new();
        f.inject(
            Rule::any()
                .method("GET")
                .path_contains("big.bin")
                .skip(2)
                .times(1),
            Fault::Hold(gate.clone()),
        );
        let mut pull = f.env.command(&["pull", "job", "big.bin", "-d", "back.bin"]);
        // The held range must not time out and be asked for again.
        pull.env("ARTIFACT_S3_PART_SIZE", "5MiB")
            .env("ARTIFACT_IO_TIMEOUT", "3600")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let child = pull.spawn().unwrap();
        assert!(gate.wait_held(Duration::from_secs(60)), "no range was held");
        // The other version arrives as a user's `push -f` would send it.
        f.env.write("big.bin", &data(size, 21));
        let mut replace = f.env.command(&["push", "job", "big.bin", "-f"]);
        replace.env("ARTIFACT_S3_PART_SIZE", "5MiB");
        f.env.run_cmd(replace, None).success();
        gate.open();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        if let Store::Moto(_) = f.env.store {
            // moto answers If-Match with 412 (s3s-fs 0.14 refuses the
            // range of the new version instead).
            assert!(
                stderr.contains("changed since the download started"),
                "{stderr}"
            );
        }
        assert!(!f.env.path("back.bin").exists());
        f.work_dir_holds(&["big.bin"]);
    }
);

fault_case!(
    damaged_bytes_reported_by_the_store_are_sent_again,
    [s3s_fs, moto],
    |f| {
        f.env.write("f.bin", &data(4000, 18));
        f.inject(puts().times(1), Fault::Xml(400, "BadDigest"));
        f.env.run(&["push", "job", "f.bin"]).success();
        assert_eq!(
            f.env.object(&format!("{JOB}/f.bin")).unwrap(),
            data(4000, 18)
        );
    }
);

/// A store that refuses the checksum headers themselves still gets the
/// upload, without them, for the rest of the run.
#[test]
fn a_store_that_refuses_checksum_headers_still_works() {
    let f = faulty(Kind::S3);
    for i in 0..4 {
        f.env.write(&format!("d/f{i}"), &data(100 + i, i as u8));
    }
    f.inject(puts().times(1), Fault::Xml(400, "NotImplemented"));
    f.env
        .run(&["push", "job", "d", "--parallel", "1"])
        .success()
        .stderr_has("the store refused the checksum headers");
    for i in 0..4 {
        assert_eq!(
            f.env.object(&format!("{JOB}/d/f{i}")).unwrap(),
            data(100 + i, i as u8)
        );
    }
    let puts: Vec<_> = f
        .proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT")
        .collect();
    assert!(puts[0].header("x-amz-checksum-sha256").is_some());
    assert!(
        puts[1..]
            .iter()
            .all(|p| p.header("x-amz-checksum-sha256").is_none()),
        "the refusal was not remembered"
    );
}

fault_case!(s3_request_timeout_is_retried, [s3s_fs, moto], |f| {
    f.env.write("f.bin", &data(3000, 19));
    f.inject(puts().times(1), Fault::Xml(400, "RequestTimeout"));
    f.env.run(&["push", "job", "f.bin"]).success();
    assert_eq!(
        f.env.object(&format!("{JOB}/f.bin")).unwrap(),
        data(3000, 19)
    );
});

// ---- listings of more than one page --------------------------------------

/// One more object than fits in a LIST page (1000), so the listing has two.
const TWO_PAGES: usize = 1001;

fn put_two_pages(env: &TestEnv) {
    for i in 0..TWO_PAGES {
        env.put_object(&format!("{JOB}/d/f{i:04}"), format!("{i}").as_bytes());
    }
}

/// The whole listing is checked before anything is written: a listing
/// that fails on its second page leaves nothing behind, not the first
/// page's files.
#[test]
fn a_listing_that_fails_part_way_writes_nothing() {
    let f = faulty(Kind::S3);
    put_two_pages(&f.env);
    f.inject(
        Rule::any()
            .method("GET")
            .query_contains("continuation-token"),
        Fault::Xml(403, "AccessDenied"),
    );
    let run = f.env.run(&["pull", "job", "d"]);
    assert_eq!(run.code, 6, "{run}");
    assert!(!f.env.path("d").exists(), "files were written\n{run}");
}

#[test]
fn a_pull_into_an_existing_destination_checks_every_page_before_writing() {
    let env = TestEnv::s3();
    put_two_pages(&env);
    env.write("d/f1000", b"mine");
    env.run(&["pull", "job", "d"])
        .failure(5)
        .stderr_has("f1000' already exists locally");
    let names: Vec<_> = std::fs::read_dir(env.path("d")).unwrap().collect();
    assert_eq!(
        names.len(),
        1,
        "files were pulled before the conflict was found"
    );
    assert_eq!(env.read("d/f1000"), b"mine");
    env.run(&["pull", "job", "d", "-f"]).success();
    assert_eq!(std::fs::read_dir(env.path("d")).unwrap().count(), TWO_PAGES);
    assert_eq!(env.read("d/f1000"), b"1000");
}

// ---- bytes damaged on the way up -------------------------------------------

const PART_BYTES: usize = 11 * 1024 * 1024;

fn part_puts() -> Rule {
    puts().query_contains("partNumber")
}

/// Pushes `name` in parts of 5 MiB.
fn push_in_parts(f: &Faulty, name: &str) -> Run {
    let mut push = f.env.command(&["push", "job", name]);
    push.env("ARTIFACT_S3_PART_SIZE", "5MiB");
    f.env.run_cmd(push, None)
}

/// The statuses the store gave to the requests whose body was damaged.
fn damaged_answers(f: &Faulty) -> Vec<Option<u16>> {
    (f.proxy.seen().into_iter())
        .filter(|s| s.fault == Some(Fault::CorruptUpload))
        .map(|s| s.status)
        .collect()
}

// A PUT and a part, one byte of each flipped once on the way: the store
// refuses it (RGW: 400 XAmzContentSHA256Mismatch, on the signed payload
// hash, as it ignores x-amz-checksum-sha256; s3s-fs: 500 InternalError) and
// the push sends it again.
fault_case!(
    an_upload_damaged_on_the_way_is_refused_and_sent_again,
    [s3s_fs, rgw],
    |f| {
        f.env.write("small.bin", &data(4000, 50));
        f.inject(puts().times(1), Fault::CorruptUpload);
        f.env.run(&["push", "job", "small.bin"]).success();
        assert_eq!(
            f.env.object(&format!("{JOB}/small.bin")).unwrap(),
            data(4000, 50)
        );
        f.env.write("big.bin", &data(PART_BYTES, 51));
        f.inject(part_puts().skip(1).times(1), Fault::CorruptUpload);
        push_in_parts(&f, "big.bin").success();
        assert_eq!(
            f.env.object(&format!("{JOB}/big.bin")).unwrap(),
            data(PART_BYTES, 51)
        );
        let refused = damaged_answers(&f);
        assert_eq!(refused.len(), 2);
        assert!(
            refused.iter().all(|s| s.is_some_and(|s| s >= 400)),
            "a damaged body was taken: {refused:?}"
        );
        f.no_open_uploads();
    }
);

/// Damaged every time: the push gives up after its attempts with an
/// integrity failure (exit 7), and nothing is stored.
#[test]
fn an_upload_damaged_every_time_fails_as_damaged_and_stores_nothing_on_rgw() {
    let f = faulty(Kind::Rgw);
    f.env.write("small.bin", &data(4000, 52));
    f.inject(puts().times(FOREVER), Fault::CorruptUpload);
    f.env
        .run(&["push", "job", "small.bin"])
        .failure(7)
        .stderr_has("the store received other bytes than were sent (XAmzContentSHA256Mismatch) and stored nothing");
    assert_eq!(f.env.object(&format!("{JOB}/small.bin")), None);

    f.env.write("big.bin", &data(PART_BYTES, 53));
    f.inject(part_puts().times(FOREVER), Fault::CorruptUpload);
    push_in_parts(&f, "big.bin")
        .failure(7)
        .stderr_has("XAmzContentSHA256Mismatch");
    assert_eq!(f.env.object(&format!("{JOB}/big.bin")), None);
    f.no_open_uploads();
    assert!(damaged_answers(&f).iter().all(|s| *s == Some(400)));
}

/// moto verifies neither the checksum header nor the signed payload hash:
/// it stores a body damaged on the way, and states the checksum that was
/// sent. The push cannot know; the pull refuses the bytes (exit 7).
#[test]
fn moto_stores_a_damaged_upload_and_the_pull_refuses_it() {
    let f = faulty(Kind::Moto);
    f.env.write("small.bin", &data(4000, 54));
    f.inject(puts().times(1), Fault::CorruptUpload);
    f.env.run(&["push", "job", "small.bin"]).success();
    assert_eq!(damaged_answers(&f), [Some(200)]);
    assert_ne!(
        f.env.object(&format!("{JOB}/small.bin")).unwrap(),
        data(4000, 54)
    );
    f.env
        .run(&["pull", "job", "small.bin", "-d", "back.bin"])
        .failure(7)
        .stderr_has("the data is damaged");
    assert!(!f.env.path("back.bin").exists());
}
