//! The local backend's own promise: racing writers cannot both win.

use crate::support::{assert_one_racer_wins, TestEnv};

#[test]
fn racing_pushes_without_force_store_exactly_one() {
    let env = TestEnv::local();
    assert_one_racer_wins(&env, 8);
    // No temporary files are left in the store.
    assert_eq!(
        env.keys(),
        vec!["artifacts/jobs/job-1/contested.txt".to_string()]
    );
}

/// A local store nested in the work directory, so that a path which
/// escapes it (`store/../escaped`) still lands in the test's own temporary
/// directory, where the test can see it.
fn nested_store() -> (TestEnv, std::path::PathBuf) {
    let mut env = TestEnv::local();
    let store = env.path("a/b/store");
    std::fs::create_dir_all(&store).unwrap();
    env.set_env("ARTIFACT_LOCAL_DIR", store.to_str().unwrap());
    (env, store)
}

#[test]
fn a_job_id_that_climbs_out_of_the_store_is_refused() {
    let (env, store) = nested_store();
    env.write("f.txt", b"x");
    // artifacts/jobs/../../../escaped/f.txt is store/../escaped/f.txt.
    env.run(&["push", "job", "f.txt", "-j", "../../../escaped"])
        .failure(3)
        .stderr_has("--job-id='../../../escaped'");
    let mut cmd = env.command(&["push", "job", "f.txt"]);
    cmd.env("SEMAPHORE_JOB_ID", "../../../escaped");
    env.run_cmd(cmd, None)
        .failure(3)
        .stderr_has("SEMAPHORE_JOB_ID='../../../escaped'");
    assert!(
        !env.path("a/b/escaped").exists(),
        "a file escaped the store"
    );
    assert!(testkit::list_files(&store).is_empty());
}

#[test]
fn yank_with_a_climbing_job_id_deletes_nothing_outside_the_store() {
    let (env, _store) = nested_store();
    // store/artifacts/jobs/../../../victim is a/b/victim.
    env.write("a/b/victim/precious.txt", b"keep me");
    env.run(&["yank", "job", "victim", "-j", "../../.."])
        .failure(3)
        .stderr_has("--job-id='../../..'");
    assert_eq!(env.read("a/b/victim/precious.txt"), b"keep me");
}

#[test]
fn ids_that_are_no_segment_of_their_own_are_refused() {
    let (env, store) = nested_store();
    env.write("f.txt", b"x");
    for id in [".", "..", "a/b", "a\\b", "x\ny"] {
        env.run(&["push", "job", "f.txt", "-j", id])
            .failure(3)
            .stderr_has("--job-id=");
        let mut cmd = env.command(&["push", "workflow", "f.txt"]);
        cmd.env("SEMAPHORE_WORKFLOW_ID", id);
        env.run_cmd(cmd, None)
            .failure(3)
            .stderr_has("SEMAPHORE_WORKFLOW_ID=");
    }
    assert!(testkit::list_files(&store).is_empty());
    // An empty flag falls back to the variable, as in the Go CLI.
    env.run(&["push", "job", "f.txt", "-j", ""]).success();
    assert_eq!(
        testkit::list_files(&store),
        vec!["artifacts/jobs/job-1/f.txt".to_string()]
    );
}

#[test]
fn push_of_the_parent_directory_needs_a_name() {
    let (env, store) = nested_store();
    env.write("top/sibling.txt", b"s");
    env.write("top/nested/inner.txt", b"i");
    let nested = env.path("top/nested");
    // From top/nested, `..` is top: its base name would make the keys
    // artifacts/jobs/sibling.txt, next to other jobs' directories.
    for source in ["..", "../..", "nested/..", "/", ""] {
        let mut cmd = env.command(&["push", "job", source]);
        cmd.current_dir(&nested);
        env.run_cmd(cmd, None)
            .failure(2)
            .stderr_has(&format!("cannot push '{source}'"));
    }
    assert!(testkit::list_files(&store).is_empty());
    let mut cmd = env.command(&["push", "job", "..", "-d", "top"]);
    cmd.current_dir(&nested);
    env.run_cmd(cmd, None).success();
    assert_eq!(
        testkit::list_files(&store),
        vec![
            "artifacts/jobs/job-1/top/nested/inner.txt".to_string(),
            "artifacts/jobs/job-1/top/sibling.txt".to_string(),
        ]
    );
}

#[test]
fn push_of_the_current_directory_goes_to_the_level_root() {
    let (env, store) = nested_store();
    env.write("dist/app.bin", b"a");
    let mut cmd = env.command(&["push", "job", "."]);
    cmd.current_dir(env.path("dist"));
    env.run_cmd(cmd, None).success();
    assert_eq!(
        testkit::list_files(&store),
        vec!["artifacts/jobs/job-1/app.bin".to_string()]
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_in_the_store_is_not_followed_out_of_it() {
    let (env, store) = nested_store();
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    env.write("outside/precious.txt", b"keep me");
    std::fs::create_dir_all(store.join("artifacts/jobs")).unwrap();
    std::os::unix::fs::symlink(&outside, store.join("artifacts/jobs/job-1")).unwrap();
    env.write("f.txt", b"x");
    env.run(&["push", "job", "f.txt"])
        .failure(1)
        .stderr_has("symbolic link");
    env.run(&["yank", "job", "precious.txt"])
        .failure(1)
        .stderr_has("symbolic link");
    assert!(!outside.join("f.txt").exists());
    assert_eq!(env.read("outside/precious.txt"), b"keep me");
}
