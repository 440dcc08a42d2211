//! --skip-unchanged: a forced push sends, and a forced pull fetches, only
//! what differs — content or mode — counted at the proxy in front of the
//! store, or (local backend) seen in the stored files themselves.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::{data, Store, TestEnv};
use testkit::fault::{FaultProxy, Quirks};

const JOB: &str = "artifacts/jobs/job-1";
const MIB: usize = 1024 * 1024;

fn chmod(path: &Path, bits: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(bits)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn puts(proxy: &FaultProxy) -> usize {
    proxy.count(|s| s.is_put_object())
}

/// Object GETs: every GET but a listing.
fn gets(proxy: &FaultProxy) -> usize {
    proxy.count(|s| s.method == "GET" && !s.query().contains("list-type"))
}

s3_case!(a_forced_push_sends_only_what_changed, |env| {
    for i in 0..200 {
        env.write(&format!("tree/f{i:03}"), &data(100 + i, i as u8));
    }
    env.run(&["push", "job", "tree"]).success();
    let proxy = env.fault_proxy(Quirks::default());
    let push = ["push", "job", "tree", "-f", "--skip-unchanged"];

    env.run(&[&push[..], &["-v"]].concat())
        .success()
        .stderr_has("Pushed 0 files. Total of 0 B")
        .stderr_has("Skipped 200 unchanged files.")
        .stderr_has(&format!("skipped '{JOB}/tree/f007': unchanged"));
    assert_eq!(puts(&proxy), 0);

    // New bytes of the same size: one PUT.
    let changed = data(103, 99);
    env.write("tree/f003", &changed);
    env.run(&push)
        .success()
        .stderr_has("Pushed 1 file.")
        .stderr_has("Skipped 199 unchanged files.");
    assert_eq!(puts(&proxy), 1);
    assert_eq!(env.object(&format!("{JOB}/tree/f003")).unwrap(), changed);

    // Only the mode changed: one PUT, and then it is unchanged again.
    chmod(&env.path("tree/f004"), 0o755);
    env.run(&push).success().stderr_has("Pushed 1 file.");
    assert_eq!(puts(&proxy), 2);
    env.run(&push)
        .success()
        .stderr_has("Skipped 200 unchanged files.");
    assert_eq!(puts(&proxy), 2);

    // The variable works as the flag does; the flag wins over it.
    env.set_env("ARTIFACT_SKIP_UNCHANGED", "true");
    env.run(&["push", "job", "tree", "-f"])
        .success()
        .stderr_has("Skipped 200 unchanged files.");
    assert_eq!(puts(&proxy), 2);
    env.run(&["push", "job", "tree", "-f", "--skip-unchanged=false"])
        .success()
        .stderr_has("Pushed 200 files.");
    assert_eq!(puts(&proxy), 202);
    // Without -f nothing is compared: the push refuses, as always.
    env.run(&["push", "job", "tree"]).failure(5);

    // Without the flag every file is sent.
    env.set_env("ARTIFACT_SKIP_UNCHANGED", "false");
    env.run(&["push", "job", "tree", "-f"])
        .success()
        .stderr_has("Pushed 200 files.");
    assert_eq!(puts(&proxy), 402);
});

s3_case!(an_unchanged_multipart_object_sends_nothing, |env| {
    env.set_env("ARTIFACT_S3_PART_SIZE", "5MiB");
    let mut big = data(11 * MIB + 5, 3);
    env.write("big.bin", &big);
    env.run(&["push", "job", "big.bin"]).success();
    let proxy = env.fault_proxy(Quirks::default());
    let push = ["push", "job", "big.bin", "-f", "--skip-unchanged"];
    env.run(&push)
        .success()
        .stderr_has("Skipped 1 unchanged file.");
    assert_eq!(proxy.count(|s| s.method == "PUT"), 0);
    assert_eq!(proxy.count(|s| s.is_create_multipart()), 0);

    // A pull compares with the composite SHA-256 of the parts.
    env.run(&["pull", "job", "big.bin", "-d", "back.bin"])
        .success();
    let fetched = gets(&proxy);
    env.run(&[
        "pull",
        "job",
        "big.bin",
        "-d",
        "back.bin",
        "-f",
        "--skip-unchanged",
    ])
    .success()
    .stderr_has("Skipped 1 unchanged file.");
    assert_eq!(gets(&proxy), fetched);

    // One byte changed in the last part: the whole file goes up again.
    let last = big.len() - 1;
    big[last] ^= 1;
    env.write("big.bin", &big);
    env.run(&push).success().stderr_has("Pushed 1 file.");
    assert_eq!(proxy.count(|s| s.is_create_multipart()), 1);
    assert_eq!(env.object(&format!("{JOB}/big.bin")).unwrap(), big);
});

// A file sent from disk after all goes up with the SHA-256 read to
// compare: the store checks it, and so does a pull.
s3_case!(
    a_changed_file_is_sent_with_the_digests_read_to_compare,
    |env| {
        let mut bytes = data(300 * 1024, 5);
        env.write("mid.bin", &bytes);
        env.run(&["push", "job", "mid.bin"]).success();
        let proxy = env.fault_proxy(Quirks::default());
        bytes[1000] ^= 1;
        env.write("mid.bin", &bytes);
        env.run(&["push", "job", "mid.bin", "-f", "--skip-unchanged"])
            .success()
            .stderr_has("Pushed 1 file.");
        assert_eq!(puts(&proxy), 1);
        env.run(&["pull", "job", "mid.bin", "-d", "back.bin"])
            .success();
        assert_eq!(env.read("back.bin"), bytes);
    }
);

s3_case!(a_forced_pull_fetches_only_what_changed, |env| {
    env.write("d/a.txt", &data(300, 1));
    env.write("d/b.txt", &data(400, 2));
    env.write("d/tool", &data(500, 3));
    chmod(&env.path("d/tool"), 0o755);
    env.run(&["push", "job", "d"]).success();
    env.run(&["pull", "job", "d", "-d", "back"]).success();
    let proxy = env.fault_proxy(Quirks::default());
    let inode = |rel: &str| fs::metadata(env.path(rel)).unwrap().ino();
    let before = [inode("back/a.txt"), inode("back/b.txt"), inode("back/tool")];
    let pull = ["pull", "job", "d", "-d", "back", "-f", "--skip-unchanged"];

    env.run(&[&pull[..], &["-v"]].concat())
        .success()
        .stderr_has("Pulled 0 files.")
        .stderr_has("Skipped 3 unchanged files.")
        .stderr_has(&format!("skipped '{JOB}/d/tool': unchanged"));
    assert_eq!(gets(&proxy), 0);

    // A local file of the same size with other bytes is fetched again; a
    // mode that differs is set in place, with nothing fetched.
    env.write("back/a.txt", &data(300, 9));
    chmod(&env.path("back/tool"), 0o600);
    env.run(&pull)
        .success()
        .stderr_has("Pulled 1 file.")
        .stderr_has("Skipped 2 unchanged files.");
    assert_eq!(gets(&proxy), 1);
    assert_eq!(env.read("back/a.txt"), data(300, 1));
    assert_eq!(mode(&env.path("back/tool")), 0o755);
    assert_ne!(inode("back/a.txt"), before[0]);
    assert_eq!(
        [inode("back/b.txt"), inode("back/tool")],
        [before[1], before[2]]
    );
});

#[test]
fn the_local_store_keeps_unchanged_files_untouched() {
    let env = TestEnv::local();
    let Store::Local(store) = &env.store else {
        unreachable!()
    };
    let stored = |name: &str| store.path().join(JOB).join("d").join(name);
    let seen = |name: &str| {
        let meta = fs::metadata(stored(name)).unwrap();
        (meta.ino(), meta.mtime_nsec(), meta.mtime())
    };
    env.write("d/same", &data(1000, 1));
    env.write("d/changed", &data(1000, 2));
    env.write("d/tool", &data(1000, 3));
    env.run(&["push", "job", "d"]).success();
    let before = [seen("same"), seen("changed"), seen("tool")];

    env.write("d/changed", &data(1000, 4));
    chmod(&env.path("d/tool"), 0o755);
    env.run(&["push", "job", "d", "-f", "--skip-unchanged"])
        .success()
        .stderr_has("Pushed 2 files.")
        .stderr_has("Skipped 1 unchanged file.");
    assert_eq!(seen("same"), before[0]);
    assert_ne!(seen("changed").0, before[1].0);
    assert_eq!(fs::read(stored("changed")).unwrap(), data(1000, 4));
    assert_eq!(mode(&stored("tool")), 0o755);

    // And a pull leaves local files that match.
    env.run(&["pull", "job", "d", "-d", "back"]).success();
    let local = fs::metadata(env.path("back/same")).unwrap().ino();
    env.run(&["pull", "job", "d", "-d", "back", "-f", "--skip-unchanged"])
        .success()
        .stderr_has("Skipped 3 unchanged files.");
    assert_eq!(fs::metadata(env.path("back/same")).unwrap().ino(), local);
}

#[test]
fn the_hub_offers_no_skipping_and_sends_everything() {
    let mut env = TestEnv::hub();
    env.write("d/a", b"one");
    env.write("d/b", b"two");
    env.run(&["push", "job", "d"]).success();
    let proxy = env.fault_proxy(Quirks::default());
    env.run(&["push", "job", "d", "-f", "--skip-unchanged"])
        .success()
        .stderr_has("Warning: --skip-unchanged is not offered with the Hub backend")
        .stderr_has("Pushed 2 files.");
    assert_eq!(puts(&proxy), 2);
    env.run(&["pull", "job", "d", "-d", "back"]).success();
    env.run(&["pull", "job", "d", "-d", "back", "-f", "--skip-unchanged"])
        .success()
        .stderr_has("Warning: --skip-unchanged is not offered with the Hub backend")
        .stderr_has("Pulled 2 files.");
}
