//! What only the S3 backend has: configuration, listing at scale,
//! multipart, conditional writes, checksums and S3's error answers.
//! Each case runs on s3s-fs (verifies signatures), on moto (independent
//! implementation) and on Ceph's RADOS Gateway (a real store) unless it
//! needs one of them.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{data, Store, TestEnv};
use testkit::fault::{Fault, Quirks, Rule};

const JOB: &str = "artifacts/jobs/job-1";
const MIB: usize = 1024 * 1024;

/// Runs a test body against s3s-fs, moto and Ceph's RADOS Gateway. A case
/// RGW cannot pass without work on the engine says so with
/// `s3_case!(name, except rgw: "why", |env| { … })`: its `rgw` test is still
/// there, ignored with that reason, so every run lists the gap.
macro_rules! s3_case {
    ($name:ident, |$env:ident| $body:block) => {
        s3_case!(@stores $name, [], |$env| $body);
    };
    ($name:ident, except rgw: $why:literal, |$env:ident| $body:block) => {
        s3_case!(@stores $name, [#[ignore = $why]], |$env| $body);
    };
    (@stores $name:ident, [$(#[$rgw:meta])*], |$env:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn s3s_fs() {
                #[allow(unused_mut)]
                let mut $env = TestEnv::s3();
                $body
            }

            #[test]
            fn moto() {
                #[allow(unused_mut)]
                let mut $env = TestEnv::moto();
                $body
            }

            #[test]
            $(#[$rgw])*
            fn rgw() {
                #[allow(unused_mut)]
                let mut $env = TestEnv::rgw();
                $body
            }
        }
    };
}

s3_case!(more_than_a_thousand_objects, |env| {
    for i in 0..1100 {
        env.write(
            &format!("many/{:02}/f{i}", i % 30),
            format!("{i}").as_bytes(),
        );
    }
    env.run(&["push", "job", "many"])
        .success()
        .stderr_has("Pushed 1100 files.");
    assert_eq!(env.keys().len(), 1100);
    // A second push finds a conflict through the paginated listing.
    env.run(&["push", "job", "many"]).failure(5);
    env.run(&["pull", "job", "many", "-d", "back"])
        .success()
        .stderr_has("Pulled 1100 files.");
    for i in (0..1100).step_by(97) {
        assert_eq!(
            env.read(&format!("back/{:02}/f{i}", i % 30)),
            format!("{i}").into_bytes()
        );
    }
    // Two list pages, two DeleteObjects of at most 1,000 keys.
    let proxy = env.fault_proxy(Quirks::default());
    env.run(&["yank", "job", "many"]).success();
    assert_eq!(proxy.count(|r| r.is_delete_objects()), 2);
    assert_eq!(proxy.count(|r| r.method == "DELETE"), 0);
    assert!(env.keys().is_empty());
});

s3_case!(multipart_upload_and_ranged_download, |env| {
    env.set_env("ARTIFACT_S3_PART_SIZE", "5MiB");
    let big = data(21 * MIB + 3, 9);
    env.write("big.bin", &big);
    env.run(&["push", "job", "big.bin", "-v"])
        .success()
        .stderr_has("multipart upload of 'artifacts/jobs/job-1/big.bin' started")
        .stderr_has("partNumber");
    assert_eq!(env.object(&format!("{JOB}/big.bin")).unwrap(), big);
    env.run(&["pull", "job", "big.bin", "-d", "back.bin", "-v"])
        .success()
        .stderr_has("downloaded in 5 ranges");
    assert_eq!(env.read("back.bin"), big);
    assert_no_open_uploads(&env);
});

/// A recorded part size S3 could not have given the object (1 byte,
/// 6 GiB) is ignored, as if none were recorded: the pull fetches ranges of
/// its own size, checks the length (and says so with -v), and gives the
/// bytes back; --skip-unchanged cannot prove the file identical, so it is
/// fetched again. Taken at its word, a part size of 1 planned 36.7 million
/// ranges of a 35 MiB object (and --skip-unchanged as many part digests),
/// past 6.5 GB of memory; 6 GiB hashed the object as one part and called
/// the right bytes damaged. moto states the composite checksum that needs
/// the part size.
#[test]
fn recorded_part_sizes_outside_s3s_rules_are_ignored() {
    let big = data(35 * MIB + 5, 3);
    for part_size in ["1", "6442450944"] {
        let env = TestEnv::moto();
        env.moto_bucket().put_multipart(
            &format!("{JOB}/big.bin"),
            &big,
            8 * MIB,
            &[("x-amz-meta-artifact-part-size", part_size)],
        );
        let pull = ["pull", "job", "big.bin", "-d", "back.bin", "-v"];
        env.run_within_memory(&pull, 512)
            .success()
            .stderr_has("ignoring its recorded part size")
            .stderr_has("only their lengths were checked");
        assert_eq!(env.read("back.bin"), big, "{part_size}");
        let again = [&pull[..], &["--force", "--skip-unchanged"]].concat();
        env.run_within_memory(&again, 512)
            .success()
            .stderr_has("Pulled 1 file");
        assert_eq!(env.read("back.bin"), big, "{part_size}");
    }
}

s3_case!(multipart_from_stdin, |env| {
    env.set_env("ARTIFACT_S3_PART_SIZE", "5MiB");
    let bytes = data(11 * MIB + 17, 4);
    env.run_with_stdin(&["push", "job", "-", "-d", "piped.bin"], &bytes)
        .success()
        .stderr_has("Pushed 1 file. Total of 11.0 MB");
    assert_eq!(env.object(&format!("{JOB}/piped.bin")).unwrap(), bytes);
    assert_no_open_uploads(&env);
});

/// Racing pushes without --force: every racer sends `If-None-Match: *`,
/// the store takes one, and the others exit 5. Neither local server is
/// atomic here: s3s-fs 0.14 and moto 5.2.5 both check `If-None-Match` and
/// then write without a lock (moto/s3/responses.py, `put_object`), so two
/// racers can both win on the server's side. The test kit's front makes the
/// store atomic: it holds the conditional PUTs until all have arrived (so
/// no racer can see another's object beforehand and skip its PUT), then
/// lets them reach moto one at a time. No outcome depends on scheduling.
#[test]
fn racing_pushes_store_exactly_one() {
    const RACERS: usize = 6;
    let f = crate::faults::faulty(crate::faults::Kind::Moto);
    f.proxy.serialise_conditional_puts(RACERS);
    crate::support::assert_one_racer_wins(&f.env, RACERS);
    // (status, If-None-Match) of every PUT: one per racer, each
    // conditional, and the store took exactly one.
    let seen = f.proxy.seen();
    let mut puts: Vec<_> = seen
        .iter()
        .filter(|s| s.method == "PUT")
        .map(|s| (s.status, s.header("if-none-match")))
        .collect();
    puts.sort();
    let mut want = vec![(Some(412), Some("*")); RACERS - 1];
    want.insert(0, (Some(200), Some("*")));
    assert_eq!(puts, want, "{seen:#?}");
}

// Racing pushes of one large file (in parts) without --force, held at
// the worst moment: every racer that gets as far as
// CompleteMultipartUpload has all its parts uploaded, and the Completes
// are then sent together. RGW 16 ignores `If-None-Match` on Complete, and
// moto and s3s-fs check it without a lock, so a guard on Complete alone
// lets several win. Exactly one may succeed, the others exit 5 having
// started no upload, and the store holds the winner's bytes, whole. On RGW
// the store itself is atomic for a create-only PUT; moto and s3s-fs are
// made so by the test kit's serialising front.
s3_case!(racing_pushes_of_a_large_file_store_exactly_one, |env| {
    const RACERS: usize = 4;
    env.set_env("ARTIFACT_S3_PART_SIZE", "5MiB");
    let proxy = env.fault_proxy(Quirks::default());
    if !matches!(env.store, Store::Rgw(_)) {
        proxy.serialise_conditional_puts(RACERS);
    }
    proxy.hold_completes(RACERS);
    let files: Vec<Vec<u8>> = (0..RACERS).map(|i| data(11 * MIB + i, i as u8)).collect();
    let mut racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let name = format!("v{i}.bin");
            env.write(&name, &files[i]);
            let mut cmd = env.command(&["push", "job", &name, "-d", "contested.bin"]);
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    // Every racer either ends or reaches the hold: then the held
    // Completes go on together (all of them at once if every racer got
    // that far).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut codes: Vec<Option<i32>> = vec![None; RACERS];
    while codes.iter().any(Option::is_none) {
        for (code, racer) in codes.iter_mut().zip(&mut racers) {
            if code.is_none() {
                *code = racer.try_wait().unwrap().map(|s| s.code().unwrap_or(-1));
            }
        }
        let ended = codes.iter().flatten().count();
        if ended + proxy.completes_held() >= RACERS {
            proxy.release_completes();
        }
        assert!(
            Instant::now() < deadline,
            "the racers did not end: {codes:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let codes: Vec<i32> = codes.into_iter().flatten().collect();
    let stderr: Vec<String> = racers
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.wait_with_output().unwrap().stderr).into_owned())
        .collect();
    let winners: Vec<usize> = (0..RACERS).filter(|&i| codes[i] == 0).collect();
    assert_eq!(winners.len(), 1, "exit codes: {codes:?}\n{stderr:#?}");
    assert!(
        codes.iter().all(|&c| c == 0 || c == 5),
        "{codes:?}\n{stderr:#?}"
    );
    let stored = env.object(&format!("{JOB}/contested.bin")).expect("stored");
    assert!(
        stored == files[winners[0]],
        "the stored object is not the winner's"
    );
    // The losers sent no part: only the winner started an upload.
    assert_eq!(proxy.count(|s| s.is_create_multipart()), 1);
    assert_no_open_uploads(&env);
});

// A push that failed and could not clean up leaves its placeholder at
// the key (and its multipart upload, for a lifecycle rule to abort). A
// pull treats the key as absent, with a warning: a pull of the name alone
// exits 4, a pull of the tree around it gets the rest. A push without
// --force exits 5, naming the unfinished push and the remedies; a yank
// removes the placeholder, and the name can be pushed again.
s3_case!(a_push_that_died_leaves_a_placeholder_readers_skip, |env| {
    env.set_env("ARTIFACT_S3_PART_SIZE", "5MiB");
    env.write("d/ok.txt", b"ok");
    env.run(&["push", "job", "d/ok.txt", "-d", "d/ok.txt"])
        .success();
    let big = data(11 * MIB, 5);
    env.write("big.bin", &big);
    let proxy = env.fault_proxy(Quirks::default());
    let complete = Rule::any().method("POST").query_contains("uploadId=");
    proxy.inject(complete, Fault::Xml(500, "InternalError"));
    // The abort and the placeholder's removal both fail.
    proxy.inject(Rule::any().method("DELETE").times(2), Fault::Status(503));
    let mut died = env.command(&["push", "job", "big.bin", "-d", "d/big.bin"]);
    died.env("ARTIFACT_RETRY_ATTEMPTS", "1");
    let died = env.run_cmd(died, None);
    assert_ne!(died.code, 0, "{died}");
    died.stderr_has("could not remove the placeholder");
    let key = format!("{JOB}/d/big.bin");
    assert!(env.object(&key).is_some_and(|b| b != big), "no placeholder");

    env.run(&["pull", "job", "d/big.bin", "-d", "pulled.bin"])
        .failure(4)
        .stderr_has(
            "'artifacts/jobs/job-1/d/big.bin' was not pulled: a push of it has not finished",
        );
    assert!(!env.path("pulled.bin").exists());
    env.run(&["pull", "job", "d", "-d", "back"])
        .success()
        .stderr_has("was not pulled: a push of it has not finished")
        .stderr_has("Pulled 1 file");
    assert_eq!(env.read("back/ok.txt"), b"ok");
    assert!(!env.path("back/big.bin").exists());
    let listed = env.run(&["list", "job", "d"]);
    listed.success();
    assert!(
        listed.stdout.contains("d/ok.txt") && !listed.stdout.contains("big.bin"),
        "{listed}"
    );
    env.run(&["list", "job", "d/big.bin"]).failure(4);
    env.run(&["push", "job", "big.bin", "-d", "d/big.bin"])
        .failure(5)
        .stderr_has("is held by a push that has not finished")
        .stderr_has("yank it, or push with --force");

    env.run(&["yank", "job", "d/big.bin"]).success();
    assert!(env.object(&key).is_none());
    env.run(&["push", "job", "big.bin", "-d", "d/big.bin"])
        .success();
    assert!(env.object(&key) == Some(big), "not the pushed bytes");
});

s3_case!(prefix_with_or_without_slashes, |env| {
    env.write("a.txt", b"a");
    for (i, prefix) in ["ci", "/ci", "ci/", "/ci/"].iter().enumerate() {
        env.set_env("ARTIFACT_S3_PREFIX", prefix);
        let name = format!("p{i}.txt");
        env.run(&["push", "job", "a.txt", "-d", &name]).success();
        assert!(
            env.object(&format!("ci/{JOB}/{name}")).is_some(),
            "{prefix}"
        );
        env.run(&["pull", "job", &name]).success();
    }
    assert!(env.keys().iter().all(|k| k.starts_with("ci/artifacts/")));
});

s3_case!(odd_keys_round_trip, |env| {
    let names = [
        "sp ace.txt",
        "plus+sign.txt",
        "hash#frag.txt",
        "q?uery.txt",
        "pct%41.txt",
        "ünï/日本語 ñ.txt",
        "a/b/c/d/e/f/g/deep.txt",
    ];
    for (i, name) in names.iter().enumerate() {
        env.write(&format!("odd/{name}"), &data(i * 3 + 1, i as u8));
    }
    env.run(&["push", "job", "odd"])
        .success()
        .stderr_has("Pushed 7 files.");
    for name in names {
        assert!(env.object(&format!("{JOB}/odd/{name}")).is_some(), "{name}");
    }
    env.run(&["pull", "job", "odd", "-d", "back"]).success();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            env.read(&format!("back/{name}")),
            data(i * 3 + 1, i as u8),
            "{name}"
        );
    }
    env.run(&["yank", "job", "odd/sp ace.txt"]).success();
    assert!(env.object(&format!("{JOB}/odd/sp ace.txt")).is_none());
});

s3_case!(exact_object_wins_over_a_directory_of_the_same_name, |env| {
    env.put_object(&format!("{JOB}/x.d"), b"file");
    env.put_object(&format!("{JOB}/x.d.old"), b"sibling");
    env.run(&["pull", "job", "x.d"])
        .success()
        .stderr_has("Pulled 1 file.");
    assert_eq!(env.read("x.d"), b"file");
});

s3_case!(ids_that_leave_their_level_make_no_keys, |env| {
    env.put_object("artifacts/jobs/victim/keep.txt", b"keep");
    env.write("f.txt", b"x");
    // Without the check these were artifacts/other/f.txt and a yank of
    // every object of job `victim`.
    env.run(&["push", "job", "f.txt", "-j", "../../other"])
        .failure(3)
        .stderr_has("--job-id='../../other'");
    env.run(&["yank", "job", "victim", "-j", ".."])
        .failure(3)
        .stderr_has("--job-id='..'");
    let mut cmd = env.command(&["push", "project", "f.txt"]);
    cmd.env("SEMAPHORE_PROJECT_ID", "../jobs/victim");
    env.run_cmd(cmd, None)
        .failure(3)
        .stderr_has("SEMAPHORE_PROJECT_ID='../jobs/victim'");
    assert_eq!(
        env.keys(),
        vec!["artifacts/jobs/victim/keep.txt".to_string()]
    );
});

/// AWS S3 (no endpoint) with requests sent to a proxy on a closed loopback
/// port: whatever the binary would send goes nowhere.
fn aws_s3_through_a_dead_proxy() -> TestEnv {
    let mut env = TestEnv::s3();
    env.set_env("ARTIFACT_S3_ENDPOINT", "");
    env.set_env("ARTIFACT_S3_REGION", "");
    env.set_env("HTTPS_PROXY", "http://127.0.0.1:0");
    env.set_env("ARTIFACT_RETRY_ATTEMPTS", "1");
    env.write("x", b"x");
    env
}

/// `x.invalid/y` made the bucket's host `b.s3.x.invalid`, where signed
/// requests (and session tokens) went. Every source of the region is
/// checked before any request.
#[test]
fn a_region_that_would_change_the_host_is_refused() {
    let env = aws_s3_through_a_dead_proxy();
    for name in ["ARTIFACT_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"] {
        for region in ["x.invalid/y", "evil.example#", "Eu-West-1"] {
            let mut cmd = env.command(&["push", "job", "x"]);
            cmd.env(name, region);
            env.run_cmd(cmd, None)
                .failure(3)
                .stderr_has(&format!("error: {name}='{region}' is not a region"));
        }
    }
    env.write("aws/config", b"[profile dev]\nregion = x.invalid/y\n");
    let mut cmd = env.command(&["push", "job", "x"]);
    cmd.env("AWS_CONFIG_FILE", env.path("aws/config"))
        .env("AWS_PROFILE", "dev");
    env.run_cmd(cmd, None)
        .failure(3)
        .stderr_has("error: region in profile 'dev'='x.invalid/y' is not a region");
}

#[test]
fn a_region_with_a_custom_endpoint_is_still_a_name() {
    let mut env = TestEnv::s3();
    env.write("x", b"x");
    env.set_env("ARTIFACT_S3_REGION", "us-east-1/evil");
    env.run(&["push", "job", "x"])
        .failure(3)
        .stderr_has("error: ARTIFACT_S3_REGION='us-east-1/evil' is not a region");
    assert!(env.keys().is_empty());
}

/// A store that names a region which is no region name is not believed:
/// requests are signed for us-east-1, as when it names none.
#[test]
fn a_bucket_region_the_store_names_is_checked() {
    use std::sync::{Arc, Mutex};
    use testkit::http::{Reply, Server};
    let scopes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&scopes);
    let store = Server::with_fn(move |req| {
        if let Some(auth) = req.header("authorization") {
            seen.lock().unwrap().push(auth.to_string());
        }
        Reply::s3_error(403, "AccessDenied", "").header("x-amz-bucket-region", "evil.example/x")
    });
    let mut env = TestEnv::s3();
    env.set_env("ARTIFACT_S3_ENDPOINT", &store.url());
    env.set_env("ARTIFACT_S3_REGION", "");
    env.run(&["-v", "pull", "job", "x"])
        .failure(6)
        .stderr_has("ignoring the region 'evil.example/x' the store named")
        .stderr_has("(region us-east-1)");
    let scopes = scopes.lock().unwrap();
    assert!(!scopes.is_empty());
    for auth in scopes.iter() {
        assert!(auth.contains("/us-east-1/s3/aws4_request"), "{auth}");
    }
}

#[test]
fn missing_bucket_variable() {
    let mut env = TestEnv::s3();
    env.set_env("ARTIFACT_S3_BUCKET", "");
    env.run(&["push", "job", "x"])
        .failure(3)
        .stderr_has("error: ARTIFACT_S3_BUCKET is not set");
}

#[test]
fn bucket_that_does_not_exist() {
    let mut env = TestEnv::s3();
    env.set_env("ARTIFACT_S3_BUCKET", "no-such-bucket");
    env.write("x", b"x");
    env.run(&["push", "job", "x"])
        .failure(3)
        .stderr_has("bucket 'no-such-bucket' does not exist");
}

#[test]
fn wrong_secret_is_permission_denied() {
    let mut env = TestEnv::s3();
    env.set_env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    env.write("x", b"x");
    env.run(&["push", "job", "x"])
        .failure(6)
        .stderr_has("permission denied")
        .stderr_has("check the credentials (found in: environment)");
    env.run(&["pull", "job", "x"]).failure(6);
}

#[test]
fn unreachable_endpoint() {
    let mut env = TestEnv::s3();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    env.set_env("ARTIFACT_S3_ENDPOINT", &format!("http://127.0.0.1:{port}"));
    env.set_env("ARTIFACT_RETRY_ATTEMPTS", "2");
    env.write("x", b"x");
    env.run(&["push", "job", "x"])
        .failure(1)
        .stderr_has(&format!("127.0.0.1:{port}"))
        .stderr_has("check the network connection");
}

#[test]
fn tls_to_a_plain_http_server_fails_clearly() {
    let mut env = TestEnv::s3();
    let endpoint = env.s3_server().endpoint().replace("http://", "https://");
    env.set_env("ARTIFACT_S3_ENDPOINT", &endpoint);
    env.set_env("ARTIFACT_RETRY_ATTEMPTS", "1");
    env.write("x", b"x");
    let run = env.run(&["push", "job", "x"]);
    run.failure(1);
    run.stderr_has("TLS handshake");
}

#[test]
fn no_credentials_at_all() {
    let mut env = TestEnv::s3();
    env.set_env("AWS_ACCESS_KEY_ID", "");
    env.set_env("AWS_SECRET_ACCESS_KEY", "");
    let home = env.work.path().to_str().unwrap().to_string();
    env.set_env("HOME", &home);
    env.run(&["pull", "job", "x"])
        .failure(3)
        .stderr_has("no AWS credentials found");
}

#[test]
fn damaged_object_is_an_integrity_error_and_never_lands() {
    let env = TestEnv::moto();
    // moto keeps the SHA-256 it is told: store one that does not match.
    env.moto_bucket().put_object_with_headers(
        &format!("{JOB}/bad.bin"),
        b"real bytes",
        &[(
            "x-amz-meta-sha256",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )],
    );
    env.run(&["pull", "job", "bad.bin"])
        .failure(7)
        .stderr_has("the data is damaged");
    assert!(!env.path("bad.bin").exists());
    let leftovers: Vec<_> = std::fs::read_dir(env.work.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn verbose_lines_show_requests_without_secrets() {
    let env = TestEnv::s3();
    env.write("v.txt", b"v");
    let run = env.run(&["push", "job", "v.txt", "-v"]);
    run.success()
        .stderr_has("S3 credentials from environment")
        .stderr_has(&format!(
            "PUT {}/{}/{JOB}/v.txt -> 200",
            env.s3_server().endpoint(),
            env.s3_server().bucket()
        ))
        .stderr_has("/?list-type=2&max-keys=1&prefix=artifacts%2Fjobs%2Fjob-1%2Fv.txt -> 200");
    assert!(
        !run.stderr.contains("Credential=") && !run.stderr.contains("authorization"),
        "{run}"
    );
}

fn assert_no_open_uploads(env: &TestEnv) {
    match &env.store {
        crate::support::Store::Moto(m) => assert_eq!(m.open_uploads(), Vec::<String>::new()),
        crate::support::Store::Rgw(r) => assert_eq!(r.open_uploads(), Vec::<String>::new()),
        crate::support::Store::S3(s) => {
            assert_eq!(s.upload_leftovers(), Vec::<std::path::PathBuf>::new())
        }
        _ => unreachable!(),
    }
}

/// Every `x-amz-*` header (and every conditional or range header) we send is
/// covered by the signature: AWS refuses unsigned ones on some requests,
/// while local servers let them pass, so this reads each request's
/// `SignedHeaders` through a recording proxy.
#[test]
fn every_header_sent_is_signed() {
    let f = crate::faults::faulty(crate::faults::Kind::S3);
    f.env.write("d/small.txt", b"small");
    f.env.write("d/big.bin", &data(21 * MIB, 3));
    let mut push = f.env.command(&["push", "job", "d"]);
    push.env("ARTIFACT_S3_PART_SIZE", "5MiB");
    f.env.run_cmd(push, None).success();
    let mut pull = f.env.command(&["pull", "job", "d", "-d", "back"]);
    pull.env("ARTIFACT_S3_PART_SIZE", "5MiB")
        .env("ARTIFACT_PARALLELISM", "4");
    f.env.run_cmd(pull, None).success();
    // One DELETE, then a DeleteObjects.
    f.env.run(&["yank", "job", "d/small.txt"]).success();
    f.env.write("d2/a", b"a");
    f.env.write("d2/b", b"b");
    f.env.run(&["push", "job", "d2"]).success();
    f.env.run(&["yank", "job", "d2"]).success();

    let seen = f.proxy.seen();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    for m in ["GET", "PUT", "POST", "DELETE"] {
        assert!(methods.contains(&m), "no {m} request was seen: {methods:?}");
    }
    assert!(
        seen.iter().any(|s| s.header("range").is_some()),
        "no ranged GET was seen"
    );
    for request in &seen {
        let auth = request
            .header("authorization")
            .unwrap_or_else(|| panic!("unsigned request {request:?}"));
        let signed: Vec<&str> = auth
            .split("SignedHeaders=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or("")
            .split(';')
            .collect();
        for (name, _) in &request.headers {
            let must_sign = name.starts_with("x-amz-")
                || matches!(
                    name.as_str(),
                    "host" | "if-none-match" | "range" | "content-type"
                );
            assert!(
                !must_sign || signed.contains(&name.as_str()),
                "{} {}: header '{name}' is not signed ({auth})",
                request.method,
                request.target
            );
        }
    }
}

/// Virtual-host addressing (`bucket.host`), reached through a loopback
/// forward proxy that resolves every name to the test server: no hosts
/// file, no DNS.
#[test]
fn virtual_host_addressing_through_a_forward_proxy() {
    use testkit::fault::FaultProxy;
    let mut env = TestEnv::s3();
    let proxy = FaultProxy::start(env.s3_server().addr());
    env.set_env(
        "ARTIFACT_S3_ENDPOINT",
        &format!("http://{}", testkit::s3::VHOST_DOMAIN),
    );
    env.set_env("HTTP_PROXY", &proxy.url());
    let names = [
        "sp ace.txt",
        "plus+sign.txt",
        "hash#frag.txt",
        "q?uery.txt",
        "pct%41.txt",
        "ünï/日本語 ñ.txt",
    ];
    for (i, name) in names.iter().enumerate() {
        env.write(&format!("odd/{name}"), &data(i + 10, i as u8));
    }
    env.run(&["push", "job", "odd", "-v"])
        .success()
        .stderr_has(&format!(
            "http://{}.{}/",
            env.s3_server().bucket(),
            testkit::s3::VHOST_DOMAIN
        ));
    env.run(&["pull", "job", "odd", "-d", "back"]).success();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            env.read(&format!("back/{name}")),
            data(i + 10, i as u8),
            "{name}"
        );
    }
    // Plain http through the proxy: absolute-form requests, no tunnel.
    let expected = format!(
        "http://{}.{}/",
        env.s3_server().bucket(),
        testkit::s3::VHOST_DOMAIN
    );
    let seen = proxy.seen();
    assert!(
        seen.iter().all(|s| s.target.starts_with(&expected)),
        "{seen:?}"
    );
    assert!(!seen.is_empty());
    assert!(proxy.connects().is_empty(), "{:?}", proxy.connects());
}

/// With no region configured, the bucket is asked (`x-amz-bucket-region`).
#[test]
fn the_region_is_detected_from_the_bucket() {
    let mut env = TestEnv::moto();
    let endpoint = env.moto_bucket().endpoint.clone();
    let bucket = format!("{}-eu", env.moto_bucket().bucket);
    let body = "<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>";
    let status = ureq::put(&format!("{endpoint}/{bucket}"))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIAMOTO/20260101/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=00")
        .config()
        .http_status_as_error(false)
        .build()
        .send(body)
        .unwrap()
        .status();
    assert_eq!(status, 200);
    env.set_env("ARTIFACT_S3_BUCKET", &bucket);
    env.set_env("ARTIFACT_S3_REGION", "");
    env.write("r.txt", b"r");
    env.run(&["push", "job", "r.txt", "-v"])
        .success()
        .stderr_has(&format!("bucket '{bucket}' is in region eu-west-1"));
}

/// A bucket in another region is explained, never a bare 301.
#[test]
fn a_wrong_region_is_explained() {
    use testkit::fault::{Fault, Rule};
    let f = crate::faults::faulty(crate::faults::Kind::S3);
    f.proxy.inject(
        Rule::any().times(usize::MAX),
        Fault::Xml(301, "PermanentRedirect"),
    );
    f.env.write("r.txt", b"r");
    f.env
        .run(&["push", "job", "r.txt"])
        .failure(3)
        .stderr_has("is not in region 'us-east-1'")
        .stderr_has("ARTIFACT_S3_REGION");
}

/// A pull or a yank of a name that is both an object and a tree (only a
/// store without directories can hold that) names both and does nothing.
#[test]
fn a_name_that_is_a_file_and_a_tree_is_ambiguous() {
    let env = TestEnv::moto();
    env.put_object(&format!("{JOB}/x"), b"file");
    env.put_object(&format!("{JOB}/x/a.txt"), b"a");
    for args in [&["pull", "job", "x"][..], &["yank", "job", "x"]] {
        env.run(args)
            .failure(1)
            .stderr_has(&format!("'{JOB}/x'"))
            .stderr_has(&format!("'{JOB}/x/a.txt'"));
    }
    assert!(!env.path("x").exists());
    assert_eq!(
        env.keys(),
        vec![format!("{JOB}/x"), format!("{JOB}/x/a.txt")]
    );
    // Each is still there by its own name: the tree's files, then the file.
    env.run(&["yank", "job", "x/a.txt"]).success();
    env.run(&["pull", "job", "x"]).success();
    assert_eq!(env.read("x"), b"file");
}
