//! The soak: thousands of files pushed and pulled through a proxy that
//! injects random faults, then proof that every byte arrived exactly once
//! and nothing extra exists. Bounded and loopback-only; run by `make soak`
//! (these tests are `#[ignore]`d in the ordinary run). The random seed is printed:
//! `SOAK_SEED=<n> make soak` replays a run.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::faults::{faulty, Kind};
use testkit::fault::Fault;

const FILES: usize = 2000;
const PER_MILLE: u32 = 30;

fn seed() -> u64 {
    std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64
        })
}

/// A deterministic tree of files from the random seed: name -> bytes.
fn tree(seed: u64) -> BTreeMap<String, Vec<u8>> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..FILES)
        .map(|i| {
            let len = (next() % (32 * 1024)) as usize * (i % 5 != 0) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            (format!("t/d{}/e{}/f{i}.bin", i % 13, i % 7), bytes)
        })
        .collect()
}

fn faults() -> Vec<Fault> {
    vec![
        Fault::Status(503),
        Fault::Status(500),
        Fault::Status(429),
        Fault::SlowDown,
        Fault::ResetBeforeResponse,
        Fault::ResetDuringUpload,
        Fault::ResetDuringDownload(50),
        Fault::ShortBody,
    ]
}

fn soak(kind: Kind) {
    let seed = seed();
    println!("soak seed: {seed} ({kind:?}; replay with SOAK_SEED={seed} make soak)");
    let f = faulty(kind);
    let files = tree(seed);
    for (name, bytes) in &files {
        f.env.write(name, bytes);
    }
    f.proxy.random_faults(seed, PER_MILLE, faults());
    let mut push = f.env.command(&["push", "job", "t"]);
    push.env("ARTIFACT_IO_TIMEOUT", "5")
        .env("ARTIFACT_RETRY_ATTEMPTS", "8");
    f.env
        .run_cmd(push, None)
        .success()
        .stderr_has(&format!("Pushed {FILES} files."));

    // Every object is there exactly once, with its bytes, and nothing else.
    let prefix = "artifacts/jobs/job-1/";
    let stored: Vec<String> = f.env.keys();
    let expected: Vec<String> = files.keys().map(|n| format!("{prefix}{n}")).collect();
    assert_eq!(stored, expected, "the store holds exactly the pushed keys");
    let mut lost = 0;
    for (name, bytes) in &files {
        if f.env.object(&format!("{prefix}{name}")).as_deref() != Some(bytes.as_slice()) {
            lost += 1;
        }
    }

    let mut pull = f.env.command(&["pull", "job", "t", "-d", "back"]);
    pull.env("ARTIFACT_IO_TIMEOUT", "5")
        .env("ARTIFACT_RETRY_ATTEMPTS", "8");
    f.env
        .run_cmd(pull, None)
        .success()
        .stderr_has(&format!("Pulled {FILES} files."));
    let mut pulled = BTreeMap::new();
    walk(&f.env.path("back"), &f.env.path("back"), &mut pulled);
    assert_eq!(
        pulled.len(),
        FILES,
        "the pull wrote exactly the pushed files"
    );
    for (name, bytes) in &files {
        let rel = name.trim_start_matches("t/");
        if pulled.get(rel) != Some(bytes) {
            lost += 1;
        }
    }
    let total: usize = files.values().map(Vec::len).sum();
    println!(
        "{FILES} files, {total} bytes, {} faults injected, {lost} lost",
        f.proxy.faults_applied()
    );
    assert_eq!(lost, 0);
    assert!(f.proxy.faults_applied() > 0, "the soak injected no fault");
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(rel, fs::read(&path).unwrap());
        }
    }
}

#[test]
#[ignore = "the soak runs in `make soak`"]
fn soak_s3() {
    soak(Kind::S3);
}

#[test]
#[ignore = "the soak runs in `make soak`"]
fn soak_hub() {
    soak(Kind::Hub);
}
