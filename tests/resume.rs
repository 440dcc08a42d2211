//! A broken download continues where it stopped: within a run, a
//! single-stream download asks only for the rest (`Range: bytes=N-`); across
//! runs, a pull killed part way leaves a journal beside its temporary file,
//! and the next pull fetches only what is missing. Bytes are counted at the
//! fault proxy in front of the storage: what each GET asked for and got.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::faults::{faulty, Faulty, Kind};
use crate::support::{data, stalled_pull, temp_files};
use testkit::fault::{Fault, Rule, Seen};

const JOB: &str = "artifacts/jobs/job-1";
const SIZE: usize = 64 * 1024 * 1024;

/// The bytes a GET asked for and got (200 or 206), from its Range header.
fn fetched(seen: &Seen, size: u64) -> u64 {
    if seen.method != "GET" || !matches!(seen.status, Some(200 | 206)) {
        return 0;
    }
    let Some(range) = seen.header("range") else {
        return size;
    };
    let (from, to) = range.trim_start_matches("bytes=").split_once('-').unwrap();
    let from: u64 = from.parse().unwrap();
    to.parse::<u64>().map_or(size - from, |to| to + 1 - from)
}

/// The object GETs among `seen`.
fn object_gets(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.method == "GET" && s.path().contains("big.bin"))
        .collect()
}

/// The bytes the journals in `dir` record as written.
fn journalled(dir: &Path) -> u64 {
    let is_journal = |p: &Path| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.split('~')
            .nth(4)
            .is_some_and(|nonce| nonce.ends_with('j'))
    };
    temp_files(dir)
        .into_iter()
        .filter(|p| is_journal(p))
        .filter_map(|p| fs::read_to_string(p).ok())
        .flat_map(|text| {
            let spans: Vec<u64> = (text.lines().skip(5))
                .filter_map(|l| l.split_once(' '))
                .filter_map(|(a, b)| Some(b.parse::<u64>().ok()? - a.parse::<u64>().ok()?))
                .collect();
            spans
        })
        .sum()
}

/// Starts `pull job big.bin` with its `parallel` object GETs (8 ranges, or
/// the Hub's one stream) each held half way, and waits until the journal
/// records about half the object (each stream records every 256 KiB).
fn half_way(f: &Faulty, parallel: &str) -> Child {
    let streams: u64 = parallel.parse().unwrap();
    let rule = Rule::any()
        .method("GET")
        .path_contains("big.bin")
        .times(streams as usize);
    let mut pull = f
        .env
        .command(&["pull", "job", "big.bin", "--parallel", parallel]);
    pull.env("ARTIFACT_S3_PART_SIZE", "8MiB")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let dir = f.env.work.path();
    let half = SIZE as u64 / 2 - streams * 256 * 1024;
    stalled_pull(&f.proxy, rule, pull, "the journal at half", || {
        journalled(dir) >= half
    })
}

/// Kills a pull half way (SIGKILL: it runs no code of its own).
fn kill_9_half_way(f: &Faulty, parallel: &str) {
    let mut child = half_way(f, parallel);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !f.env.path("big.bin").exists(),
        "a partial file at the destination"
    );
}

/// Pushes 64 MiB as `big.bin` in parts of `part_size` (a single PUT when
/// larger), so that the store states a checksum for the whole object.
fn pushed(kind: Kind, part_size: &str) -> Faulty {
    let f = faulty(kind);
    f.env.write("src.bin", &data(SIZE, 41));
    let mut push = f.env.command(&["push", "job", "src.bin", "-d", "big.bin"]);
    push.env("ARTIFACT_S3_PART_SIZE", part_size);
    f.env.run_cmd(push, None).success();
    fs::remove_file(f.env.path("src.bin")).unwrap();
    f
}

/// Pulls `big.bin` again; the bytes its object GETs asked for and got.
fn pull_again(f: &Faulty) -> u64 {
    let before = f.proxy.seen().len();
    f.env.run(&["pull", "job", "big.bin", "-v"]).success();
    let seen = f.proxy.seen();
    let total = object_gets(&seen[before..])
        .iter()
        .map(|s| fetched(s, SIZE as u64))
        .sum();
    assert!(temp_files(f.env.work.path()).is_empty(), "leftovers remain");
    total
}

/// A large S3 object comes down in 8 ranges of 8 MiB, all in flight with
/// `--parallel 8` (one stream with `--parallel 1`), each held half way:
/// half the object is on disk when the run is killed, and the next run
/// fetches the other half in ranges and verifies the whole.
fn continued_in_ranges(kind: Kind, part_size: &str, parallel: &str) {
    let f = pushed(kind, part_size);
    kill_9_half_way(&f, parallel);
    let again = pull_again(&f);
    assert!(
        again <= SIZE as u64 * 55 / 100,
        "the second run fetched {again} of {SIZE} bytes"
    );
    assert!(
        f.env.read("big.bin") == data(SIZE, 41),
        "not byte-identical"
    );
}

#[test]
fn a_killed_ranged_pull_continues_on_s3s_fs() {
    // One PUT: the whole object's SHA-256, hashed in order.
    continued_in_ranges(Kind::S3, "128MiB", "8");
}

/// With `--parallel 1` the first run fetches one stream; the next, in
/// ranges, takes its prefix over all the same.
#[test]
fn a_killed_single_stream_s3_pull_continues_in_ranges() {
    continued_in_ranges(Kind::S3, "128MiB", "1");
}

#[test]
fn a_killed_ranged_pull_continues_on_moto() {
    // Multipart: the composite checksum, part by part.
    continued_in_ranges(Kind::Moto, "8MiB", "8");
}

/// RGW states no checksum of a multipart object, only its ETag `md5-N`:
/// the part size we recorded gives N parts, so the ETag vouches for what
/// the dead run left.
#[test]
fn a_killed_ranged_pull_of_a_multipart_object_continues_on_rgw() {
    continued_in_ranges(Kind::Rgw, "8MiB", "8");
}

/// The Hub's download is one stream: the next run asks for the rest with
/// `If-Match`, and checks the storage's MD5 of the whole.
#[test]
fn a_killed_hub_pull_continues_from_its_prefix() {
    let f = faulty(Kind::Hub);
    f.env.hub_server().set_goog_md5(Some(true));
    f.env.put_object(&format!("{JOB}/big.bin"), &data(SIZE, 42));
    kill_9_half_way(&f, "1");
    let before = f.proxy.seen().len();
    let again = pull_again(&f);
    let seen = f.proxy.seen();
    let gets = object_gets(&seen[before..]);
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].status, Some(206));
    assert!(gets[0].header("if-match").is_some());
    assert!(again <= SIZE as u64 * 55 / 100, "fetched {again} of {SIZE}");
    assert!(
        f.env.read("big.bin") == data(SIZE, 42),
        "not byte-identical"
    );
}

/// An object replaced between the kill and the next pull is fetched whole,
/// and the result is the new version; the dead run's file is not used and
/// nothing is left behind — nor is a leftover of another file.
fn replaced_between_runs(f: Faulty, parallel: &str) {
    kill_9_half_way(&f, parallel);
    // A dead run's leftover of a file this pull does not write.
    for temp in temp_files(f.env.work.path()) {
        let name = temp.file_name().unwrap().to_string_lossy().into_owned();
        fs::copy(
            &temp,
            temp.with_file_name(name.replace("big.bin", "other.bin")),
        )
        .unwrap();
    }
    f.env.write("new.bin", &data(SIZE, 43));
    let mut push = f
        .env
        .command(&["push", "job", "new.bin", "-d", "big.bin", "-f"]);
    push.env("ARTIFACT_S3_PART_SIZE", "128MiB");
    f.env.run_cmd(push, None).success();
    let again = pull_again(&f);
    assert!(again >= SIZE as u64, "fetched only {again} of {SIZE} bytes");
    assert!(
        f.env.read("big.bin") == data(SIZE, 43),
        "not the new version"
    );
    fs::remove_file(f.env.path("new.bin")).unwrap();
    let mut names: Vec<_> = fs::read_dir(f.env.work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["big.bin"]);
}

#[test]
fn an_object_replaced_after_the_kill_is_fetched_whole_on_moto() {
    replaced_between_runs(pushed(Kind::Moto, "8MiB"), "8");
}

#[test]
fn an_object_replaced_after_the_kill_is_fetched_whole_from_the_hub() {
    let f = faulty(Kind::Hub);
    f.env.hub_server().set_goog_md5(Some(true));
    f.env.put_object(&format!("{JOB}/big.bin"), &data(SIZE, 42));
    replaced_between_runs(f, "1");
}

/// Within a run: a reset at 90 % of a single-stream download asks only for
/// the rest again, with `If-Match`, and the storage answers 206. How much
/// of the 90 % the pull had read when the reset came depends on the moment
/// (a reset drops what was sent and not yet read), so that is a limit.
#[test]
fn a_reset_at_90_percent_fetches_only_the_rest() {
    let f = faulty(Kind::Hub);
    f.env.put_object(&format!("{JOB}/big.bin"), &data(SIZE, 44));
    f.proxy.inject(
        Rule::any().method("GET").path_contains("big.bin"),
        Fault::ResetDuringDownload(90),
    );
    f.env.run(&["pull", "job", "big.bin"]).success();
    assert!(
        f.env.read("big.bin") == data(SIZE, 44),
        "not byte-identical"
    );
    let seen = f.proxy.seen();
    let gets = object_gets(&seen);
    assert_eq!(gets.len(), 2, "{gets:?}");
    let retry = gets[1];
    let from: u64 = retry
        .header("range")
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
        .expect("a range from the bytes written");
    assert!(
        0 < from && from <= SIZE as u64 * 9 / 10,
        "resumed from {from}"
    );
    assert_eq!(retry.status, Some(206));
    assert!(retry.header("if-match").is_some());
    assert_eq!(fetched(retry, SIZE as u64), SIZE as u64 - from);
}

/// A dead run's bytes that fail the final check (damaged after the kill)
/// are not trusted: the pull fetches the missing half, fails the check,
/// starts over, and ends with the right bytes.
fn damaged_leftover(f: Faulty, parallel: &str, want: &[u8]) {
    kill_9_half_way(&f, parallel);
    let temp = temp_files(f.env.work.path())
        .into_iter()
        .find(|p| !p.to_string_lossy().contains("j~big.bin"))
        .unwrap();
    let mut bytes = fs::read(&temp).unwrap();
    bytes[1000] ^= 0xFF;
    fs::write(&temp, bytes).unwrap();
    let again = pull_again(&f);
    assert!(
        again >= SIZE as u64 * 145 / 100,
        "fetched {again} of {SIZE} bytes"
    );
    assert!(f.env.read("big.bin") == want, "not byte-identical");
}

#[test]
fn a_damaged_leftover_fails_the_check_and_the_ranged_pull_starts_over() {
    damaged_leftover(pushed(Kind::S3, "128MiB"), "8", &data(SIZE, 41));
}

#[test]
fn a_damaged_leftover_fails_the_check_and_the_hub_pull_starts_over() {
    let f = faulty(Kind::Hub);
    f.env.hub_server().set_goog_md5(Some(true));
    f.env.put_object(&format!("{JOB}/big.bin"), &data(SIZE, 46));
    damaged_leftover(f, "1", &data(SIZE, 46));
}

/// A cancelled pull removes its journal with its temporary file: only a
/// run that dies without running any code leaves one.
#[test]
fn sigterm_during_a_journalled_pull_leaves_nothing() {
    let f = faulty(Kind::Hub);
    f.env.hub_server().set_goog_md5(Some(true));
    f.env.put_object(&format!("{JOB}/big.bin"), &data(SIZE, 45));
    let mut child = half_way(&f, "1");
    let mut term = Command::new("kill");
    term.arg("-TERM").arg(child.id().to_string());
    assert!(term.status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(143));
    let left: Vec<_> = fs::read_dir(f.env.work.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
