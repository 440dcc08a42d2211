//! Killed runs, hostile remote names and bad local input: each ends with one
//! clear message and a defined exit code, and leaves the store and the disk
//! consistent — nothing written outside the destination, no partial files.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, SystemTime};

use crate::faults::{faulty, Faulty, Kind};
use crate::support::{data, stalled_pull, temp_files, TestEnv};
use testkit::fault::{Fault, Gate, Rule};

const JOB: &str = "artifacts/jobs/job-1";

/// Starts `args` (a pull) with its object GETs that `rule` picks
/// stalled half way, once it has a temporary file; gives that file too.
fn stalled(f: &Faulty, rule: Rule, args: &[&str]) -> (Child, PathBuf) {
    let mut pull = f.env.command(args);
    pull.stdout(Stdio::null()).stderr(Stdio::null());
    let dir = f.env.work.path();
    let child = stalled_pull(&f.proxy, rule, pull, "a temporary file", || {
        !temp_files(dir).is_empty()
    });
    (child, temp_files(dir).remove(0))
}

// ---- killed mid-way ---------------------------------------------------

/// Whatever the next run does with the dead run's temporary file — removes
/// it, or adopts and completes it when a journal names the same object
/// (`tests/resume.rs`) — nothing of it is left afterwards.
#[test]
fn kill_9_during_a_pull_leaves_no_partial_file_and_the_next_run_cleans_up() {
    let f = faulty(Kind::S3);
    f.env
        .put_object(&format!("{JOB}/big.bin"), &data(2_000_000, 1));
    let rule = Rule::any().method("GET").path_contains("/artifacts/");
    let (mut child, temp) = stalled(&f, rule, &["pull", "job", "big.bin"]);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !f.env.path("big.bin").exists(),
        "a killed pull left a file at the destination"
    );
    assert!(
        temp.exists(),
        "the dead run's temporary file is recognisable"
    );

    f.env.run(&["pull", "job", "big.bin"]).success();
    assert_eq!(f.env.read("big.bin"), data(2_000_000, 1));
    assert!(
        temp_files(f.env.work.path()).is_empty(),
        "the stale temporary file was not removed"
    );
}

#[test]
fn kill_9_during_a_forced_pull_keeps_the_previous_file() {
    let f = faulty(Kind::S3);
    f.env
        .put_object(&format!("{JOB}/big.bin"), &data(500_000, 2));
    f.env.write("big.bin", b"the previous complete file");
    let rule = Rule::any().method("GET").path_contains("/artifacts/");
    let (mut child, _) = stalled(&f, rule, &["pull", "job", "big.bin", "-f"]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(f.env.read("big.bin"), b"the previous complete file");
}

#[test]
fn a_live_run_keeps_its_temporary_file_while_another_run_cleans_up() {
    let f = faulty(Kind::S3);
    f.env.put_object(&format!("{JOB}/slow.bin"), &data(1000, 3));
    f.env.put_object(&format!("{JOB}/fast.bin"), &data(1000, 4));
    let rule = Rule::any().method("GET").path_contains("slow.bin");
    let (mut slow, live_temp) = stalled(&f, rule, &["pull", "job", "slow.bin"]);
    // Leftovers of another host (a shared volume) and of a day-old run.
    let other_host = f.env.path(".artifact-tmp~other-host~1~1~0~x");
    fs::write(&other_host, b"x").unwrap();
    let ancient = f.env.path(".artifact-tmp~other-host~1~2~0~y");
    fs::write(&ancient, b"y").unwrap();
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    fs::File::options()
        .write(true)
        .open(&ancient)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();

    f.env.run(&["pull", "job", "fast.bin"]).success();
    assert!(
        live_temp.exists(),
        "a live run's temporary file was removed"
    );
    assert!(
        other_host.exists(),
        "another host's fresh temporary file was removed"
    );
    assert!(!ancient.exists(), "a day-old temporary file was kept");
    slow.kill().unwrap();
    slow.wait().unwrap();
}

// ---- hostile remote names ----------------------------------------------
// (Control characters cannot be stored through moto's URLs; the unit tests
// of `paths::local_path_for` cover them.)

#[test]
fn hostile_keys_in_a_listing_are_refused() {
    // (A backslash is an ordinary character of a Unix name: see
    // `scenarios::a_name_with_a_backslash_comes_back`.)
    for (i, hostile) in ["d/%2E%2E/%2E%2E/escape", "d//abs"].iter().enumerate() {
        let env = TestEnv::moto();
        env.put_object(&format!("{JOB}/d/fine.txt"), b"fine");
        env.moto_bucket()
            .put_object_raw_path(&format!("{JOB}/{hostile}"), b"evil");
        let run = env.run(&["pull", "job", "d", "-d", &format!("out{i}")]);
        assert_ne!(run.code, 0, "{hostile}: {run}");
        assert!(
            run.stderr.contains("refusing remote object") || run.stderr.contains("cannot both"),
            "{hostile}: {run}"
        );
        let written: Vec<_> = fs::read_dir(env.work.path()).unwrap().collect();
        assert!(
            written.is_empty(),
            "{hostile}: something was written: {written:?}"
        );
        assert!(!env.work.path().parent().unwrap().join("escape").exists());
    }
}

#[test]
fn a_symlink_in_the_destination_is_not_followed_out_of_it() {
    let env = TestEnv::local();
    let outside = tempfile::tempdir().unwrap();
    env.put_object(&format!("{JOB}/d/sub/f.txt"), b"data");
    fs::create_dir_all(env.path("d")).unwrap();
    symlink(outside.path(), env.path("d/sub")).unwrap();
    env.run(&["pull", "job", "d", "-f"])
        .failure(8)
        .stderr_has("symlink");
    assert!(
        fs::read_dir(outside.path()).unwrap().next().is_none(),
        "wrote through the symlink"
    );
}

#[test]
fn a_file_and_a_directory_of_the_same_name_collide_clearly() {
    let env = TestEnv::local();
    env.put_object(&format!("{JOB}/x.txt"), b"file");
    fs::create_dir_all(env.path("x.txt")).unwrap();
    env.run(&["pull", "job", "x.txt"])
        .failure(5)
        .stderr_has("already exists locally");
    env.run(&["pull", "job", "x.txt", "-f"]).failure(8);
    assert!(env.path("x.txt").is_dir());
}

// ---- bad local input ---------------------------------------------------

#[test]
fn a_fifo_cannot_be_pushed_and_is_skipped_inside_a_directory() {
    let env = TestEnv::local();
    fs::create_dir_all(env.path("d")).unwrap();
    let status = Command::new("mkfifo")
        .arg(env.path("d/pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    env.write("d/real.txt", b"real");
    env.run(&["push", "job", "d/pipe"])
        .failure(8)
        .stderr_has("not a regular file");
    env.run(&["push", "job", "d"])
        .success()
        .stderr_has("skipping")
        .stderr_has("Pushed 1 file.");
    assert_eq!(env.keys(), vec![format!("{JOB}/d/real.txt")]);
}

/// The file grows while its PUT is held at the proxy: after the bytes were
/// read, before the push is done.
#[test]
fn a_file_that_grows_while_pushed_is_an_error() {
    let f = faulty(Kind::Hub);
    f.env.write("growing.log", b"first line\n");
    let gate = Gate::new();
    f.proxy
        .inject(Rule::any().method("PUT"), Fault::Hold(gate.clone()));
    let path = f.env.path("growing.log");
    let writer = thread::spawn(move || {
        assert!(gate.wait_held(Duration::from_secs(60)), "no PUT was held");
        let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
        std::io::Write::write_all(&mut file, b"second line\n").unwrap();
        gate.open();
    });
    f.env
        .run(&["push", "job", "growing.log"])
        .failure(8)
        .stderr_has("changed size while being pushed");
    writer.join().unwrap();
}

#[test]
fn an_s3_key_over_1024_bytes_is_refused_before_anything_is_sent() {
    let env = TestEnv::s3();
    let segment = "s".repeat(120);
    let deep: Vec<String> = (0..9).map(|i| format!("{segment}{i}")).collect();
    env.write(&format!("{}/f.txt", deep.join("/")), b"x");
    env.run(&["push", "job", &format!("{segment}0")])
        .failure(8)
        .stderr_has("S3 keys are at most 1024");
    assert!(env.keys().is_empty());
}

#[test]
fn a_name_that_is_not_utf8_is_named_in_the_error() {
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::local();
    fs::create_dir_all(env.path("d")).unwrap();
    fs::write(
        env.path("d")
            .join(std::ffi::OsStr::from_bytes(b"bad\xffname")),
        b"x",
    )
    .unwrap();
    env.run(&["push", "job", "d"])
        .failure(8)
        .stderr_has("not valid UTF-8");
    assert!(env.keys().is_empty());
}

#[test]
fn an_empty_directory_pushes_nothing_and_says_so() {
    let env = TestEnv::local();
    fs::create_dir_all(env.path("empty")).unwrap();
    env.run(&["push", "job", "empty"])
        .success()
        .stderr_has("no files to push")
        .stderr_has("Pushed 0 files.");
}

#[test]
fn a_destination_whose_parent_is_a_file() {
    let env = TestEnv::local();
    env.put_object(&format!("{JOB}/x.txt"), b"x");
    env.write("file.txt", b"I am a file");
    env.run(&["pull", "job", "x.txt", "-d", "file.txt/x.txt"])
        .failure(8)
        .stderr_has("a parent of this path is a file");
    assert_eq!(env.read("file.txt"), b"I am a file");
}

/// A full disk, for real: a 1 MiB tmpfs in a private mount namespace
/// (needs root, which CI and this project's machines have).
#[test]
fn a_full_disk_on_pull_fails_clearly_and_leaves_nothing() {
    let env = TestEnv::local();
    env.put_object(&format!("{JOB}/big.bin"), &data(3 * 1024 * 1024, 5));
    let mount = env.path("small-disk");
    fs::create_dir_all(&mount).unwrap();
    let template = env.command(&["pull", "job", "big.bin"]);
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs '{m}' && cd '{m}' && '{bin}' pull job big.bin; code=$?; echo \"files: $(ls -A '{m}' | tr '\\n' ' ')\"; exit $code",
        m = mount.display(),
        bin = env!("CARGO_BIN_EXE_artifact"),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script]).env_clear();
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let run = env.run_cmd(cmd, None);
    run.failure(8)
        .stderr_has("No space left on device")
        .stderr_has("free some disk space");
    assert!(
        run.stdout.contains("files: \n") || run.stdout.trim_end() == "files:",
        "partial files left: {run}"
    );
}

/// An unreadable file, for real: the binary runs as `nobody` (root reads
/// everything), through util-linux's setpriv.
#[test]
fn an_unreadable_file_is_named_and_nothing_is_stored() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::local();
    let store = match &env.store {
        crate::support::Store::Local(dir) => dir.path().to_path_buf(),
        _ => unreachable!(),
    };
    for dir in [env.work.path(), store.as_path()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
    }
    let secret = env.write("secret.txt", b"no one may read this");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let template = env.command(&["push", "job", "secret.txt"]);
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_artifact"),
        "push",
        "job",
        "secret.txt",
    ])
    .current_dir(env.work.path())
    .env_clear();
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    env.run_cmd(cmd, None)
        .failure(8)
        .stderr_has("secret.txt")
        .stderr_has("check the file permissions");
    assert!(env.keys().is_empty());
}
