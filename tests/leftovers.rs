//! What others leave in a pull's destination is input, never proof: a
//! planted leftover, journal or look-alike name can never make a pull write
//! outside its destination, keep bytes the store did not state, keep a mode
//! the object did not record, or remove a live run's or a user's file.
//!
//! A dead run's leftovers are planted both in today's temporary-name format
//! (`.artifact-tmp~HOST~PIDNS~PID~NONCE~NAME`) and in the one before PID
//! namespaces (`.artifact-tmp~HOST~PID~NONCE~NAME`), with the journal each
//! format had: a pull reads only the first, and must handle it safely; the
//! second shows what earlier versions did with the same attack.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::faults::{faulty, Kind};
use crate::support::{data, stalled_pull, temp_files, TestEnv};
use testkit::fault::{Fault, Rule};

const JOB: &str = "artifacts/jobs/job-1";
const SIZE: usize = 1024 * 1024;
/// A PID no process has (above any pid_max).
const DEAD_PID: u32 = 999_999_999;

/// This host's name as temporary names record it.
fn host() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    name.trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(64)
        .collect()
}

/// The PID namespace the binary runs in (the test's own).
fn namespace() -> String {
    let link = fs::read_link("/proc/self/ns/pid").unwrap();
    let link = link.to_string_lossy().into_owned();
    link.trim_start_matches("pid:[")
        .trim_end_matches(']')
        .to_string()
}

/// A dead run's temporary file and journal names for `name`, in today's
/// format and in the one before.
fn dead_names(name: &str) -> [(String, String); 2] {
    let (host, ns) = (host(), namespace());
    [
        (
            format!(".artifact-tmp~{host}~{ns}~{DEAD_PID}~0~{name}"),
            format!(".artifact-tmp~{host}~{ns}~{DEAD_PID}~0j~{name}"),
        ),
        (
            format!(".artifact-tmp~{host}~{DEAD_PID}~0~{name}"),
            format!(".artifact-tmp~{host}~{DEAD_PID}~0j~{name}"),
        ),
    ]
}

/// A journal for `key` that claims its first `have` bytes, in today's
/// format and, with `check`, in the one before.
fn journals(key: &str, etag: &str, size: usize, have: usize, check: &str) -> [String; 2] {
    [
        format!("artifact-journal 2\nkey {key}\netag {etag}\nversion \nsize {size}\n0 {have}\n"),
        format!(
            "artifact-journal 1\nkey {key}\netag {etag}\nversion \nsize {size}\ncheck {check}\n0 {have}\n"
        ),
    ]
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// F1: a leftover that is a symlink to a file outside the destination,
/// with a journal that matches the object, is never written through, and
/// the pulled file is a file of its own.
#[test]
fn a_planted_symlink_leftover_is_never_written_through() {
    let f = faulty(Kind::Hub);
    f.env.hub_server().set_goog_md5(Some(true));
    let key = format!("{JOB}/big.bin");
    f.env.put_object(&key, &data(SIZE, 1));
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    let precious = vec![b'v'; SIZE];
    fs::write(&victim, &precious).unwrap();
    let md5 = b64(&md5::compute(data(SIZE, 1)).0);
    let texts = journals(&key, "\"x\"", SIZE, SIZE / 2, &format!("md5 {md5}"));
    for ((temp, journal), text) in dead_names("big.bin").iter().zip(texts) {
        symlink(&victim, f.env.path(temp)).unwrap();
        fs::write(f.env.path(journal), text).unwrap();
    }
    f.env.run(&["pull", "job", "big.bin", "-v"]).success();
    assert!(
        fs::read(&victim).unwrap() == precious,
        "the victim was written"
    );
    let pulled = f.env.path("big.bin");
    assert!(!is_symlink(&pulled), "the pulled file is a symlink");
    assert!(fs::read(&pulled).unwrap() == data(SIZE, 1));
    // Today's planted symlink is gone, not followed.
    assert!(!f.env.path(&dead_names("big.bin")[0].0).exists());
}

/// F3: leftover bytes that differ from the object, with a journal that
/// vouches for them, are checked against the SHA-256 the store states and
/// thrown away; the file gets the object's recorded mode, not the
/// leftover's setuid 04777.
#[test]
fn a_tampered_journal_cannot_vouch_for_wrong_bytes_or_keep_their_mode() {
    let f = faulty(Kind::S3);
    let src = f.env.write("src.bin", &data(SIZE, 2));
    fs::set_permissions(&src, fs::Permissions::from_mode(0o644)).unwrap();
    f.env
        .run(&["push", "job", "src.bin", "-d", "big.bin"])
        .success();
    let key = format!("{JOB}/big.bin");
    let mut forged = data(SIZE, 2);
    forged[..SIZE / 2].iter_mut().for_each(|b| *b ^= 0x55);
    let etag = format!("\"{:x}\"", md5::compute(data(SIZE, 2)));
    let check = format!("sha256 {}", b64(&Sha256::digest(&forged)));
    let texts = journals(&key, &etag, SIZE, SIZE / 2, &check);
    for ((temp, journal), text) in dead_names("big.bin").iter().zip(texts) {
        let temp = f.env.path(temp);
        fs::write(&temp, &forged[..SIZE / 2]).unwrap();
        fs::set_permissions(&temp, fs::Permissions::from_mode(0o4777)).unwrap();
        fs::write(f.env.path(journal), text).unwrap();
    }
    let run = f.env.run(&["pull", "job", "big.bin", "-v"]);
    run.success()
        .stderr_has("adopted")
        .stderr_has("the bytes a dead run left were bad");
    assert!(f.env.read("big.bin") == data(SIZE, 2), "wrong bytes kept");
    let mode = fs::metadata(f.env.path("big.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o644, "mode {mode:o}");
}

/// F4: a run in another PID namespace on the same host (a second container
/// of a pod sharing the volume) leaves a live run's temporary file alone,
/// though it sees no process with that PID.
#[test]
fn a_run_in_another_pid_namespace_leaves_a_live_runs_file_alone() {
    let f = faulty(Kind::S3);
    f.env.put_object(&format!("{JOB}/slow.bin"), &data(SIZE, 3));
    f.env.put_object(&format!("{JOB}/fast.bin"), &data(1000, 4));
    let mut pull = f.env.command(&["pull", "job", "slow.bin"]);
    pull.stdout(Stdio::null()).stderr(Stdio::null());
    let dir = f.env.work.path();
    let rule = Rule::any().method("GET").path_contains("slow.bin");
    let mut slow = stalled_pull(&f.proxy, rule, pull, "a temporary file", || {
        !temp_files(dir).is_empty()
    });
    let live = temp_files(dir).remove(0);
    let other = in_new_pid_namespace(f.env.command(&["pull", "job", "fast.bin"]));
    f.env.run_cmd(other, None).success();
    let kept = live.exists();
    slow.kill().unwrap();
    slow.wait().unwrap();
    assert!(kept, "another namespace's run removed a live run's file");
}

/// `cmd`, run by `unshare` in a PID namespace of its own, with /proc
/// showing only that namespace's processes.
fn in_new_pid_namespace(cmd: Command) -> Command {
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (name, value) in cmd.get_envs() {
        if let Some(value) = value {
            wrapped.env(name, value);
        }
    }
    wrapped
}

/// F5: files that merely start like our temporary names, however old, are
/// a user's: a pull into their directory never removes them.
#[test]
fn a_users_look_alike_file_is_never_removed() {
    let env = TestEnv::local();
    env.put_object(&format!("{JOB}/d/f.txt"), b"data");
    let look_alikes: Vec<PathBuf> = [
        ".artifact-tmp~my notes.txt",
        ".artifact-tmp~h~1~2~format-before-namespaces",
        ".artifact-tmp~h~1~2~x~y",
    ]
    .iter()
    .map(|name| env.write(&format!("d/{name}"), b"mine"))
    .collect();
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86400);
    for path in &look_alikes {
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(two_days_ago).unwrap();
    }
    env.run(&["pull", "job", "d", "-f"]).success();
    for path in &look_alikes {
        assert!(path.exists(), "{path:?} was removed");
    }
}

/// F9: a body that runs past the size the listing states fails at once,
/// before the excess is written, and leaves nothing.
#[test]
fn a_body_past_its_listed_size_fails_at_once() {
    let f = faulty(Kind::S3);
    f.env.put_object(&format!("{JOB}/big.bin"), &data(SIZE, 5));
    f.proxy.inject(
        Rule::any()
            .method("GET")
            .path_contains("big.bin")
            .times(usize::MAX),
        Fault::Overlong(4 * SIZE),
    );
    f.env
        .run(&["pull", "job", "big.bin"])
        .failure(1)
        .stderr_has("sent more than the");
    let left: Vec<_> = fs::read_dir(f.env.work.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// F12: a hostile key on the second page of a listing stops the pull
/// before anything is written, as on the first.
#[test]
fn a_hostile_key_on_a_later_page_stops_the_pull_before_any_write() {
    let env = TestEnv::moto();
    for i in 0..1000 {
        env.put_object(&format!("{JOB}/d/f{i:04}"), b"fine");
    }
    env.moto_bucket()
        .put_object_raw_path(&format!("{JOB}/d/zz/%2E%2E/%2E%2E/escape"), b"evil");
    let run = env.run(&["pull", "job", "d", "-d", "out"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("refusing remote object"), "{run}");
    assert!(!env.path("out").exists(), "files were written");
    assert!(!env.work.path().parent().unwrap().join("escape").exists());
}
