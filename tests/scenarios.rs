//! Push, pull and yank as a user sees them, once per backend.

use std::fs;

use crate::scenario;
use crate::support::{data, Store};

const JOB: &str = "artifacts/jobs/job-1";

scenario!(push_file, |env| {
    env.write("build.log", b"hello");
    env.run(&["push", "job", "build.log"])
        .success()
        .stderr_has("Successfully pushed artifact for current job.")
        .stderr_has("* Local source: build.log.")
        .stderr_has(&format!("* Remote destination: {JOB}/build.log."))
        .stderr_has("Pushed 1 file. Total of 5 B");
    assert_eq!(env.object(&format!("{JOB}/build.log")).unwrap(), b"hello");
});

scenario!(push_nested_file_keeps_the_base_name, |env| {
    env.write("a/b/c.txt", b"c");
    env.run(&["push", "job", "./a/b/c.txt"]).success();
    assert_eq!(env.keys(), vec![format!("{JOB}/c.txt")]);
});

scenario!(push_directory, |env| {
    env.write("dist/app.bin", &data(3000, 1));
    env.write("dist/lib/x.so", &data(10, 2));
    env.write("dist/.hidden", b"h");
    env.write("dist/empty.txt", b"");
    fs::create_dir_all(env.path("dist/empty-dir")).unwrap();
    env.run(&["push", "workflow", "dist/"])
        .success()
        .stderr_has("Successfully pushed artifact for current workflow.")
        .stderr_has("Pushed 4 files. Total of 2.9 KB");
    let wf = "artifacts/workflows/wf-1/dist";
    assert_eq!(
        env.keys(),
        vec![
            format!("{wf}/.hidden"),
            format!("{wf}/app.bin"),
            format!("{wf}/empty.txt"),
            format!("{wf}/lib/x.so"),
        ]
    );
    assert_eq!(env.object(&format!("{wf}/app.bin")).unwrap(), data(3000, 1));
});

scenario!(push_with_destination, |env| {
    env.write("x.txt", b"x");
    for (flag, key) in [
        (vec!["-d", "renamed.txt"], "renamed.txt"),
        (vec!["-dother/deep.txt"], "other/deep.txt"),
        (vec!["--destination", "/abs.txt"], "abs.txt"),
        (vec!["--destination=../up.txt"], "up.txt"),
    ] {
        let mut args = vec!["push", "project", "x.txt"];
        args.extend(flag);
        env.run(&args).success();
        assert_eq!(
            env.object(&format!("artifacts/projects/proj-1/{key}"))
                .unwrap(),
            b"x",
            "{key}"
        );
    }
});

scenario!(push_conflict_without_and_with_force, |env| {
    env.put_object(&format!("{JOB}/dir/b.txt"), b"old");
    env.write("dir/a.txt", b"a");
    env.write("dir/b.txt", b"new");
    env.write("dir/c.txt", b"c");
    env.run(&["push", "job", "dir"])
        .failure(5)
        .stderr_has("Error pushing artifact: ")
        .stderr_has(&format!(
            "'{JOB}/dir/b.txt' already exists in the remote storage; delete it first, or use --force flag"
        ));
    // Nothing was uploaded: the conflict was found first.
    assert_eq!(env.keys(), vec![format!("{JOB}/dir/b.txt")]);
    assert_eq!(env.object(&format!("{JOB}/dir/b.txt")).unwrap(), b"old");

    env.run(&["push", "job", "dir", "--force"])
        .success()
        .stderr_has("Pushed 3 files.");
    assert_eq!(env.object(&format!("{JOB}/dir/b.txt")).unwrap(), b"new");
    assert_eq!(env.keys().len(), 3);
});

scenario!(pull_file, |env| {
    env.put_object(&format!("{JOB}/report.xml"), b"<xml/>");
    env.run(&["pull", "job", "report.xml"])
        .success()
        .stderr_has("Successfully pulled artifact for current job.")
        .stderr_has(&format!("* Remote source: '{JOB}/report.xml'."))
        .stderr_has("* Local destination: 'report.xml'.")
        .stderr_has("Pulled 1 file. Total of 6 B");
    assert_eq!(env.read("report.xml"), b"<xml/>");
});

scenario!(pull_directory_and_into_nested_destination, |env| {
    env.put_object(&format!("{JOB}/out/a.txt"), b"a");
    env.put_object(&format!("{JOB}/out/sub/b.txt"), b"bb");
    env.put_object(&format!("{JOB}/outside.txt"), b"no");
    env.run(&["pull", "job", "out"])
        .success()
        .stderr_has("Pulled 2 files. Total of 3 B");
    assert_eq!(env.read("out/a.txt"), b"a");
    assert_eq!(env.read("out/sub/b.txt"), b"bb");

    env.run(&["pull", "job", "/out/sub/b.txt", "-d", "deep/er/b.copy"])
        .success();
    assert_eq!(env.read("deep/er/b.copy"), b"bb");
    env.run(&["pull", "job", "out", "-d", "x/y"]).success();
    assert_eq!(env.read("x/y/sub/b.txt"), b"bb");
});

scenario!(pull_onto_existing_file, |env| {
    env.put_object(&format!("{JOB}/f.txt"), b"remote");
    env.write("f.txt", b"local");
    env.run(&["pull", "job", "f.txt"])
        .failure(5)
        .stderr_has("'f.txt' already exists locally; delete it first, or use --force flag");
    assert_eq!(env.read("f.txt"), b"local");
    env.run(&["pull", "job", "f.txt", "-f"]).success();
    assert_eq!(env.read("f.txt"), b"remote");
    // Nothing but the file is left in the directory: no temporary files.
    let names: Vec<_> = fs::read_dir(env.work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("f.txt")]);
});

scenario!(pull_missing, |env| {
    env.run(&["pull", "job", "nothing-here"])
        .failure(4)
        .stderr_has("Error pulling artifact: ")
        .stderr_has("Please check if the artifact you are trying to pull exists.");
    assert!(!env.path("nothing-here").exists());
});

scenario!(yank_file_directory_and_alias, |env| {
    env.put_object(&format!("{JOB}/one.txt"), b"1");
    env.put_object(&format!("{JOB}/dir/a"), b"a");
    env.put_object(&format!("{JOB}/dir/b/c"), b"c");
    env.put_object(&format!("{JOB}/keep.txt"), b"k");
    env.run(&["yank", "job", "one.txt"])
        .success()
        .stderr_has(&format!(
            "Successfully yanked '{JOB}/one.txt' from current job artifacts."
        ));
    env.run(&["delete", "job", "dir"]).success();
    assert_eq!(env.keys(), vec![format!("{JOB}/keep.txt")]);
    env.run(&["yank", "job", "one.txt"])
        .failure(4)
        .stderr_has("Error yanking artifact: ")
        .stderr_has("Please check if the artifact you are trying to yank exists.");
});

scenario!(stdin_both_ways, |env| {
    let bytes = data(100_000, 7);
    env.run_with_stdin(&["push", "job", "-", "-d", "piped.bin"], &bytes)
        .success()
        .stderr_has("Pushed 1 file. Total of 97.7 KB");
    env.run_with_stdin(
        &["push", "job", "/dev/stdin", "-d", "dev.bin"],
        b"\0\x01\xff binary",
    )
    .success();
    env.run(&["pull", "job", "piped.bin"]).success();
    assert_eq!(env.read("piped.bin"), bytes);
    assert_eq!(
        env.object(&format!("{JOB}/dev.bin")).unwrap(),
        b"\0\x01\xff binary"
    );
});

// `-v` says how stdin went: the Go CLI's line where a pipe is spooled to
// a temporary file (Hub, local), a line of our own where it is streamed
// (S3), never a temporary file that is not there.
scenario!(verbose_stdin_push_says_how_it_goes, |env| {
    const SPOOLING: &str = "Detected stdin, saving it to a temporary file...";
    const STREAMING: &str =
        "Detected stdin, streaming it in parts of 8.0 MB held in memory, with no temporary file...";
    for source in ["-", "/dev/stdin"] {
        let run = env.run_with_stdin(
            &["push", "job", source, "-d", "piped.txt", "-f", "-v"],
            b"in",
        );
        run.success()
            .stderr_has("reading standard input, to push to 'artifacts/jobs/job-1/piped.txt'");
        let (said, not_said) = match env.store {
            Store::S3(_) | Store::Moto(_) | Store::Rgw(_) => (STREAMING, SPOOLING),
            Store::Hub(_) | Store::Local(_) => (SPOOLING, STREAMING),
        };
        run.stderr_has(said);
        assert!(!run.stderr.contains(not_said), "{run}");
    }
});

// `--expire-in` prints the Go CLI's lines on stdout, byte for byte; on a
// store of the user's own, one more line on stderr says where retention
// is set up.
scenario!(expire_in_keeps_the_go_lines, |env| {
    env.write("x.txt", b"x");
    let run = env.run(&["push", "job", "x.txt", "--expire-in", "1w"]);
    run.success();
    assert_eq!(
        run.stdout,
        "\nWARNING: The --expire-in flag is obsolete and will have no efffect.\n\
         Use artifact retention policies to control the lifetime of artifacts.\n\
         Docs: https://docs.semaphoreci.com/essentials/artifacts/#artifact-retention-policies\n\n"
    );
    let pointer = "Warning: Semaphore's retention policies do not reach this store; README's \"Retention on your own store\" (under \"S3 backend\") shows how to expire artifacts there.";
    match env.store {
        Store::Hub(_) => assert!(!run.stderr.contains("Retention on your own store"), "{run}"),
        Store::Local(_) | Store::S3(_) | Store::Moto(_) | Store::Rgw(_) => {
            run.stderr_has(pointer);
        }
    }
});

scenario!(file_path_with_stdin_open_pushes_the_file, |env| {
    env.write("real.txt", b"file content");
    env.run_with_stdin(&["push", "job", "real.txt"], b"not this")
        .success();
    assert_eq!(
        env.object(&format!("{JOB}/real.txt")).unwrap(),
        b"file content"
    );
});

scenario!(empty_file_round_trip, |env| {
    env.write("empty", b"");
    env.run(&["push", "job", "empty"])
        .success()
        .stderr_has("Pushed 1 file. Total of 0 B");
    fs::remove_file(env.path("empty")).unwrap();
    env.run(&["pull", "job", "empty"])
        .success()
        .stderr_has("Pulled 1 file. Total of 0 B");
    assert_eq!(env.read("empty"), b"");
});

scenario!(two_hundred_small_files_round_trip, |env| {
    for i in 0..200 {
        env.write(&format!("many/d{}/f{i}.txt", i % 7), &data(i * 13, i as u8));
    }
    env.run(&["push", "job", "many", "--parallel", "16"])
        .success()
        .stderr_has("Pushed 200 files.");
    env.run(&["pull", "job", "many", "-d", "back"])
        .success()
        .stderr_has("Pulled 200 files.");
    for i in 0..200 {
        assert_eq!(
            env.read(&format!("back/d{}/f{i}.txt", i % 7)),
            data(i * 13, i as u8),
            "file {i}"
        );
    }
});

scenario!(ids_from_flags_override_the_environment, |env| {
    env.write("x", b"x");
    env.run(&["push", "job", "x", "--job-id", "other-job"])
        .success();
    env.run(&["push", "workflow", "x", "-w", "other-wf"])
        .success();
    env.run(&["push", "project", "x", "--project-id=other-proj"])
        .success();
    assert_eq!(
        env.keys(),
        vec![
            "artifacts/jobs/other-job/x".to_string(),
            "artifacts/projects/other-proj/x".to_string(),
            "artifacts/workflows/other-wf/x".to_string(),
        ]
    );
    env.run(&["pull", "job", "x", "-j", "other-job", "-d", "got"])
        .success();
    assert_eq!(env.read("got"), b"x");
});

scenario!(push_missing_source, |env| {
    env.run(&["push", "job", "does-not-exist"])
        .failure(8)
        .stderr_has("Error pushing artifact: ")
        .stderr_has("does-not-exist");
    assert!(env.keys().is_empty());
});

// ---- file modes -----------------------------------------------------------

fn mode(env: &crate::support::TestEnv, rel: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(env.path(rel)).unwrap().permissions().mode() & 0o7777
}

fn chmod(env: &crate::support::TestEnv, rel: &str, bits: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(env.path(rel), fs::Permissions::from_mode(bits)).unwrap();
}

scenario!(file_modes_round_trip_where_the_store_keeps_them, |env| {
    env.write("d/tool", b"#!/bin/sh\n");
    env.write("d/secret", b"s");
    env.write("d/suid", b"u");
    chmod(&env, "d/tool", 0o755);
    chmod(&env, "d/secret", 0o700);
    chmod(&env, "d/suid", 0o4755);
    env.run(&["push", "job", "d"]).success();
    env.run(&["pull", "job", "d", "-d", "back"]).success();
    if matches!(env.store, crate::support::Store::Hub(_)) {
        // Signed URLs carry no metadata: new files get the default mode.
        assert_eq!(mode(&env, "back/tool") & 0o111, 0);
        return;
    }
    // The umask may take group and other bits away, never add them.
    assert_eq!(mode(&env, "back/tool") & 0o700, 0o700);
    assert_eq!(mode(&env, "back/tool") & !0o755, 0);
    assert_eq!(mode(&env, "back/secret"), 0o700);
    assert_eq!(mode(&env, "back/suid") & 0o7000, 0, "setuid applied");
    assert_eq!(mode(&env, "back/suid") & 0o700, 0o700);
});

scenario!(
    a_forced_pull_keeps_the_mode_of_the_file_it_replaces_when_none_is_recorded,
    |env| {
        env.write("run.sh", b"new");
        chmod(&env, "run.sh", 0o644);
        env.run(&["push", "job", "run.sh"]).success();
        env.write("run.sh", b"old");
        chmod(&env, "run.sh", 0o750);
        env.run(&["pull", "job", "run.sh", "-f"]).success();
        assert_eq!(env.read("run.sh"), b"new");
        let expected = match env.store {
            // Nothing recorded: the replaced file's mode stays.
            crate::support::Store::Hub(_) => 0o750,
            // Recorded at push: 0644, less the umask.
            _ => mode(&env, "run.sh") & 0o644,
        };
        assert_eq!(mode(&env, "run.sh"), expected);
    }
);

// ---- what a push accepts, a pull gives back --------------------------------

#[cfg(unix)]
scenario!(a_name_with_a_backslash_comes_back, |env| {
    // On Unix a backslash is an ordinary character of a name.
    env.write("dir/back\\slash.txt", b"slash");
    env.write("dir/plain.txt", b"plain");
    env.run(&["push", "job", "dir"]).success();
    assert_eq!(
        env.keys(),
        vec![
            format!("{JOB}/dir/back\\slash.txt"),
            format!("{JOB}/dir/plain.txt")
        ]
    );
    env.run(&["pull", "job", "dir", "-d", "back"]).success();
    assert_eq!(env.read("back/back\\slash.txt"), b"slash");
    assert_eq!(env.read("back/plain.txt"), b"plain");
    env.run(&["pull", "job", "dir/back\\slash.txt", "-d", "one.txt"])
        .success();
    assert_eq!(env.read("one.txt"), b"slash");
});

#[cfg(unix)]
scenario!(a_name_no_pull_could_write_is_refused_by_the_push, |env| {
    env.put_object(&format!("{JOB}/before.txt"), b"before");
    let keys = env.keys();
    env.write("dir/fine.txt", b"fine");
    env.write("dir/sub/line\nbreak.txt", b"x");
    env.run(&["push", "job", "dir"])
        .failure(8)
        .stderr_has("dir/sub/line\\nbreak.txt")
        .stderr_has("no pull could write");
    env.run(&["push", "job", "dir", "-f"]).failure(8);
    env.run_with_stdin(&["push", "job", "-", "-d", "tab\there"], b"x")
        .failure(8)
        .stderr_has("tab\\there");
    assert_eq!(env.keys(), keys, "something was stored");
});

// ---- a file and a tree under one name ----------------------------------------

scenario!(
    a_tree_is_not_pushed_over_a_stored_file_without_force,
    |env| {
        env.write("x", b"file");
        env.run(&["push", "job", "x"]).success();
        fs::remove_file(env.path("x")).unwrap();
        env.write("x/a.txt", b"a");
        env.run(&["push", "job", "x"])
            .failure(5)
            .stderr_has(&format!("'{JOB}/x' already exists"));
        assert_eq!(env.keys(), vec![format!("{JOB}/x")]);
        // With --force the file makes way for the tree.
        env.run(&["push", "job", "x", "-f"]).success();
        assert_eq!(env.keys(), vec![format!("{JOB}/x/a.txt")]);
        env.run(&["pull", "job", "x", "-d", "back"]).success();
        assert_eq!(env.read("back/a.txt"), b"a");
    }
);

scenario!(
    a_file_is_not_pushed_over_a_stored_tree_without_force,
    |env| {
        env.write("x/old.txt", b"old");
        env.write("x/sub/deep.txt", b"deep");
        env.run(&["push", "job", "x"]).success();
        fs::remove_dir_all(env.path("x")).unwrap();
        env.write("x", b"file");
        env.run(&["push", "job", "x"])
            .failure(5)
            .stderr_has(&format!("'{JOB}/x/old.txt' already exists"));
        let tree = vec![format!("{JOB}/x/old.txt"), format!("{JOB}/x/sub/deep.txt")];
        assert_eq!(env.keys(), tree);
        env.run_with_stdin(&["push", "job", "-", "-d", "x"], b"piped")
            .failure(5);
        assert_eq!(env.keys(), tree);
        // With --force the tree makes way for the file.
        env.run(&["push", "job", "x", "-f"]).success();
        assert_eq!(env.keys(), vec![format!("{JOB}/x")]);
        env.run(&["pull", "job", "x", "-d", "back"]).success();
        assert_eq!(env.read("back"), b"file");
    }
);

scenario!(a_forced_tree_push_keeps_what_it_does_not_write, |env| {
    env.write("x/old.txt", b"old");
    env.run(&["push", "job", "x"]).success();
    fs::remove_dir_all(env.path("x")).unwrap();
    env.write("x/new.txt", b"new");
    env.run(&["push", "job", "x", "-f"]).success();
    assert_eq!(
        env.keys(),
        vec![format!("{JOB}/x/new.txt"), format!("{JOB}/x/old.txt")]
    );
});
