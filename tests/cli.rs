//! Help, version, usage errors (exit 2), configuration errors (exit 3), ID
//! flags and the Go CLI's fixed lines; the local backend where a command
//! has to run at all.

use crate::support::{Run, TestEnv};

/// Exit 2 with the short usage on stderr.
#[track_caller]
fn usage_error(env: &TestEnv, args: &[&str]) -> Run {
    let run = env.run(args);
    run.failure(2).stderr_has("Usage:");
    assert!(run.stdout.is_empty(), "usage errors go to stderr\n{run}");
    run
}

/// Whether `line` starts with Go's `time.StampMilli` in brackets,
/// `[Nov  5 04:31:00.000] `, and returns the rest.
fn strip_timestamp(line: &str) -> Option<&str> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let rest = line.strip_prefix('[')?;
    let stamp = rest.get(..19)?;
    let rest = rest.get(19..)?.strip_prefix("] ")?;
    let b = stamp.as_bytes();
    let digit = |i: usize| b[i].is_ascii_digit();
    let ok = MONTHS.contains(&&stamp[..3])
        && b[3] == b' '
        && (b[4] == b' ' || (digit(4) && b[4] != b'0'))
        && digit(5)
        && b[6] == b' '
        && digit(7)
        && digit(8)
        && b[9] == b':'
        && digit(10)
        && digit(11)
        && b[12] == b':'
        && digit(13)
        && digit(14)
        && b[15] == b'.'
        && digit(16)
        && digit(17)
        && digit(18);
    ok.then_some(rest)
}

/// `line` is one whole line of stderr.
#[track_caller]
fn assert_stderr_line(run: &Run, line: &str) {
    assert!(
        run.stderr.lines().any(|l| l == line),
        "stderr has no line {line:?}\n{run}"
    );
}

#[track_caller]
fn assert_timestamped_line(run: &Run, message: &str) {
    let found = run
        .stderr
        .lines()
        .any(|line| strip_timestamp(line) == Some(message));
    assert!(found, "no timestamped line {message:?} on stderr\n{run}");
}

// ------------------------------------------------------------ help and version

#[test]
fn general_help() {
    let env = TestEnv::local();
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let run = env.run(args);
        run.success().stdout_has("Usage:").stdout_has("push");
        assert!(run.stderr.is_empty(), "{run}");
    }
}

#[test]
fn push_help() {
    let env = TestEnv::local();
    for args in [&["push", "--help"][..], &["help", "push"], &["push", "-h"]] {
        env.run(args)
            .success()
            .stdout_has("Usage:")
            .stdout_has("artifact push")
            .stdout_has("--destination")
            .stdout_has("--force")
            .stdout_has("--expire-in");
    }
}

#[test]
fn pull_help() {
    let env = TestEnv::local();
    let run = env.run(&["pull", "-h"]);
    run.success()
        .stdout_has("artifact pull")
        .stdout_has("--destination")
        .stdout_has("--force");
    assert!(!run.stdout.contains("--expire-in"), "{run}");
}

#[test]
fn yank_and_delete_help() {
    let env = TestEnv::local();
    for args in [
        &["yank", "--help"][..],
        &["delete", "--help"],
        &["help", "yank"],
    ] {
        let run = env.run(args);
        run.success()
            .stdout_has("artifact yank")
            .stdout_has("--job-id");
        assert!(!run.stdout.contains("--destination"), "{run}");
        assert!(!run.stdout.contains("--force"), "{run}");
    }
}

#[test]
fn help_after_a_full_command_runs_nothing() {
    let env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.run(&["push", "job", "x.txt", "--help"])
        .success()
        .stdout_has("--destination");
    assert!(env.keys().is_empty(), "{:?}", env.keys());
}

#[test]
fn version() {
    let env = TestEnv::local();
    let run = env.run(&["--version"]);
    run.success();
    let line = run.stdout.trim_end();
    assert_eq!(run.stdout.lines().count(), 1, "{run}");
    let prefix = format!("artifact {} (commit ", env!("CARGO_PKG_VERSION"));
    let rest = line
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `{prefix}…)`\n{run}"));
    let (commit, target) = rest
        .split_once(", ")
        .unwrap_or_else(|| panic!("no `commit, target`\n{run}"));
    assert!(
        !commit.is_empty() && !commit.contains(' '),
        "commit {commit:?}\n{run}"
    );
    assert!(
        target.split('-').count() >= 3 && !target.contains(' '),
        "target {target:?}\n{run}"
    );
}

// ------------------------------------------------------------ usage errors (2)

#[test]
fn no_arguments_is_a_usage_error() {
    usage_error(&TestEnv::local(), &[]);
}

#[test]
fn unknown_command_is_a_usage_error() {
    usage_error(&TestEnv::local(), &["fetch", "job", "x"]).stderr_has("fetch");
}

#[test]
fn unknown_level_is_a_usage_error() {
    usage_error(&TestEnv::local(), &["push", "team", "x"]).stderr_has("team");
}

#[test]
fn missing_level_is_a_usage_error() {
    usage_error(&TestEnv::local(), &["pull"]);
}

#[test]
fn missing_path_is_a_usage_error() {
    usage_error(&TestEnv::local(), &["push", "job"]);
}

#[test]
fn two_paths_is_a_usage_error() {
    let env = TestEnv::local();
    env.write("a", b"a");
    env.write("b", b"b");
    usage_error(&env, &["push", "job", "a", "b"]).stderr_has("'b'");
    assert!(env.keys().is_empty(), "{:?}", env.keys());
}

#[test]
fn unknown_flag_is_a_usage_error() {
    usage_error(&TestEnv::local(), &["push", "job", "a", "--bogus"]).stderr_has("--bogus");
}

#[test]
fn flag_without_its_value_is_a_usage_error() {
    usage_error(&TestEnv::local(), &["push", "job", "a", "-d"]);
}

#[test]
fn expire_in_on_pull_is_a_usage_error() {
    usage_error(&TestEnv::local(), &["pull", "job", "a", "-e", "1d"]);
}

#[test]
fn destination_on_yank_is_a_usage_error() {
    usage_error(&TestEnv::local(), &["yank", "job", "a", "-d", "x"]);
}

#[test]
fn force_on_yank_is_a_usage_error() {
    usage_error(&TestEnv::local(), &["delete", "job", "a", "-f"]);
}

#[test]
fn bad_parallel_flag_is_a_usage_error() {
    usage_error(&TestEnv::local(), &["push", "job", "a", "--parallel", "0"]);
    usage_error(
        &TestEnv::local(),
        &["pull", "job", "a", "--parallel", "lots"],
    );
}

#[test]
fn stdin_push_without_destination_is_a_usage_error() {
    let env = TestEnv::local();
    // No input: the command must refuse before reading any.
    let run = env.run(&["push", "job", "-"]);
    run.failure(2)
        .stderr_has("Usage:")
        .stderr_has("--destination");
    assert!(env.keys().is_empty(), "{:?}", env.keys());
}

// ------------------------------------------------------------ configuration errors (3)

#[test]
fn unknown_backend_is_a_configuration_error() {
    let mut env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.set_env("ARTIFACT_BACKEND", "bogus");
    env.run(&["push", "job", "x.txt"])
        .failure(3)
        .stderr_has("error: ")
        .stderr_has("ARTIFACT_BACKEND")
        .stderr_has("bogus");
}

#[test]
fn local_backend_without_its_directory_is_a_configuration_error() {
    let mut env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.set_env("ARTIFACT_LOCAL_DIR", "");
    env.run(&["push", "job", "x.txt"])
        .failure(3)
        .stderr_has("error: ARTIFACT_LOCAL_DIR");
}

/// The Go CLI's words for a missing ID, as a whole line after `error: `.
fn missing_id_line(level: &str, var: &str, flag: &str) -> String {
    format!(
        "error: {level} ID is not set. Please use the {var} environment variable \
         or the {flag} parameter to configure it"
    )
}

#[test]
fn missing_job_id_names_the_variable_and_the_flag() {
    let mut env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.set_env("SEMAPHORE_JOB_ID", "");
    let run = env.run(&["push", "job", "x.txt"]);
    run.failure(3);
    assert_stderr_line(
        &run,
        &missing_id_line("job", "SEMAPHORE_JOB_ID", "--job-id"),
    );
    assert!(env.keys().is_empty(), "{:?}", env.keys());
}

#[test]
fn missing_workflow_id_names_the_variable_and_the_flag() {
    let mut env = TestEnv::local();
    env.set_env("SEMAPHORE_WORKFLOW_ID", "");
    let run = env.run(&["pull", "workflow", "x.txt"]);
    run.failure(3);
    assert_stderr_line(
        &run,
        &missing_id_line("workflow", "SEMAPHORE_WORKFLOW_ID", "--workflow-id"),
    );
}

#[test]
fn missing_project_id_names_the_variable_and_the_flag() {
    let mut env = TestEnv::local();
    env.set_env("SEMAPHORE_PROJECT_ID", "");
    let run = env.run(&["yank", "project", "x.txt"]);
    run.failure(3);
    assert_stderr_line(
        &run,
        &missing_id_line("project", "SEMAPHORE_PROJECT_ID", "--project-id"),
    );
}

#[test]
fn other_levels_ids_are_not_needed() {
    let mut env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.set_env("SEMAPHORE_WORKFLOW_ID", "");
    env.set_env("SEMAPHORE_PROJECT_ID", "");
    env.run(&["push", "job", "x.txt"]).success();
    assert_eq!(env.keys(), vec!["artifacts/jobs/job-1/x.txt".to_string()]);
}

#[test]
fn zero_parallelism_is_a_configuration_error() {
    let mut env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.set_env("ARTIFACT_PARALLELISM", "0");
    env.run(&["push", "job", "x.txt"])
        .failure(3)
        .stderr_has("error: ")
        .stderr_has("ARTIFACT_PARALLELISM");
    assert!(env.keys().is_empty(), "{:?}", env.keys());
}

/// A zero timeout used to be taken, and every request then failed; on the
/// Hub and S3 only after the store was asked. Refused before anything runs,
/// on every backend, naming the variable and its range.
#[test]
fn zero_or_out_of_range_durations_are_configuration_errors() {
    let env = TestEnv::local();
    env.write("x.txt", b"hello");
    for (name, values) in [
        ("ARTIFACT_IO_TIMEOUT", &["0", "0s", "0ms", "3601"][..]),
        ("ARTIFACT_CONNECT_TIMEOUT", &["0", "0.0001", "601s"][..]),
        ("ARTIFACT_RETRY_DELAY", &["0ms", "11"][..]),
    ] {
        for value in values {
            let mut cmd = env.command(&["push", "job", "x.txt"]);
            cmd.env(name, value);
            env.run_cmd(cmd, None).failure(3).stderr_has(&format!(
                "error: {name}='{value}' is not valid: use a duration from 1ms to "
            ));
        }
    }
    assert!(env.keys().is_empty(), "{:?}", env.keys());
}

// ------------------------------------------------------------ ID flags

#[test]
fn job_id_flag_overrides_the_environment() {
    let env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.run(&["push", "job", "x.txt", "--job-id", "J9"])
        .success()
        .stderr_has("Successfully pushed artifact for current job.");
    assert_eq!(env.keys(), vec!["artifacts/jobs/J9/x.txt".to_string()]);
    env.run(&["pull", "job", "x.txt", "-d", "back.txt", "-j", "J9"])
        .success();
    assert_eq!(env.read("back.txt"), b"hello");
}

#[test]
fn workflow_id_flag_overrides_the_environment() {
    let env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.run(&["push", "workflow", "x.txt", "-w", "W9"])
        .success()
        .stderr_has("Successfully pushed artifact for current workflow.");
    assert_eq!(env.keys(), vec!["artifacts/workflows/W9/x.txt".to_string()]);
}

#[test]
fn project_id_flag_overrides_the_environment() {
    let env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.run(&["push", "project", "x.txt", "--project-id=P9"])
        .success()
        .stderr_has("Successfully pushed artifact for current project.");
    assert_eq!(env.keys(), vec!["artifacts/projects/P9/x.txt".to_string()]);
    env.run(&["yank", "project", "x.txt", "-p", "P9"])
        .success()
        .stderr_has(
            "Successfully yanked 'artifacts/projects/P9/x.txt' from current project artifacts.",
        );
    assert!(env.keys().is_empty(), "{:?}", env.keys());
}

#[test]
fn id_flag_replaces_a_missing_variable() {
    let mut env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.set_env("SEMAPHORE_JOB_ID", "");
    env.run(&["push", "job", "x.txt", "-j", "J7"]).success();
    assert_eq!(env.keys(), vec!["artifacts/jobs/J7/x.txt".to_string()]);
}

// ------------------------------------------------------------ compatibility flags

#[test]
fn expire_in_prints_the_obsolete_warning_and_still_pushes() {
    let env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.run(&["push", "job", "x.txt", "--expire-in", "1w"])
        .success()
        .stdout_has("WARNING: The --expire-in flag is obsolete and will have no efffect.");
    assert_eq!(env.keys(), vec!["artifacts/jobs/job-1/x.txt".to_string()]);
    assert_eq!(
        env.object("artifacts/jobs/job-1/x.txt"),
        Some(b"hello".to_vec())
    );
}

#[test]
fn short_expire_in_also_warns() {
    let env = TestEnv::local();
    env.write("x.txt", b"hello");
    env.run(&["push", "job", "-e", "10d", "x.txt"])
        .success()
        .stdout_has("WARNING: The --expire-in flag is obsolete");
}

#[test]
fn config_before_the_command_is_accepted_with_a_warning() {
    let env = TestEnv::local();
    env.write("x.txt", b"hello");
    let run = env.run(&["--config", "x.yml", "push", "job", "x.txt"]);
    run.success().stderr_has("x.yml");
    assert!(run.stderr.to_ascii_lowercase().contains("warning"), "{run}");
    assert_eq!(env.keys(), vec!["artifacts/jobs/job-1/x.txt".to_string()]);
}

#[test]
fn verbose_before_the_command_works() {
    let env = TestEnv::local();
    env.write("x.txt", b"hello");
    let quiet = env.run(&["push", "job", "x.txt"]);
    quiet.success();
    let verbose = env.run(&["-v", "push", "job", "x.txt", "-f"]);
    verbose
        .success()
        .stderr_has("Successfully pushed artifact for current job.");
    assert!(
        verbose.stderr.lines().count() > quiet.stderr.lines().count(),
        "-v adds lines\n{quiet}\n{verbose}"
    );
}

// ------------------------------------------------------------ output lines

#[test]
fn success_lines_are_timestamped_on_stderr() {
    let env = TestEnv::local();
    env.write("five.txt", b"12345");
    let push = env.run(&["push", "job", "five.txt"]);
    push.success();
    assert!(push.stdout.is_empty(), "{push}");
    assert_timestamped_line(&push, "Successfully pushed artifact for current job.");
    assert_timestamped_line(&push, "* Local source: five.txt.");
    assert_timestamped_line(
        &push,
        "* Remote destination: artifacts/jobs/job-1/five.txt.",
    );
    assert_timestamped_line(&push, "Pushed 1 file. Total of 5 B");

    let pull = env.run(&["pull", "job", "five.txt", "-d", "copy.txt"]);
    pull.success();
    assert_timestamped_line(&pull, "Successfully pulled artifact for current job.");
    assert_timestamped_line(&pull, "* Remote source: 'artifacts/jobs/job-1/five.txt'.");
    assert_timestamped_line(&pull, "* Local destination: 'copy.txt'.");
    assert_timestamped_line(&pull, "Pulled 1 file. Total of 5 B");

    let yank = env.run(&["yank", "job", "five.txt"]);
    yank.success();
    assert_timestamped_line(
        &yank,
        "Successfully yanked 'artifacts/jobs/job-1/five.txt' from current job artifacts.",
    );
}

#[test]
fn directory_totals_are_plural_and_1024_based() {
    let env = TestEnv::local();
    env.write("d/a.bin", &vec![1u8; 1024]);
    env.write("d/b.bin", &vec![2u8; 205]);
    let run = env.run(&["push", "job", "d"]);
    run.success();
    assert_timestamped_line(&run, "Pushed 2 files. Total of 1.2 KB");
}

#[test]
fn timestamp_checker_accepts_only_stamp_milli() {
    assert_eq!(strip_timestamp("[Nov  5 04:31:00.000] hi"), Some("hi"));
    assert_eq!(strip_timestamp("[Feb 29 23:59:59.999] x"), Some("x"));
    assert_eq!(strip_timestamp("[Nov 05 04:31:00.000] hi"), None);
    assert_eq!(strip_timestamp("[Nov  5 04:31:00] hi"), None);
    assert_eq!(strip_timestamp("Nov  5 04:31:00.000 hi"), None);
    assert_eq!(strip_timestamp("[Foo  5 04:31:00.000] hi"), None);
}

// ------------------------------------------------------------ credentials in URLs

/// Runs a push with `vars`, with and without `-v`: `secret` is in no
/// output. Every URL here is loopback, port 0, where nothing listens.
#[track_caller]
fn assert_url_secret_never_printed(env: &TestEnv, vars: &[(&str, &str)], secret: &str) {
    for verbose in [false, true] {
        let args: &[&str] = if verbose {
            &["-v", "push", "job", "x.txt"]
        } else {
            &["push", "job", "x.txt"]
        };
        let mut cmd = env.command(args);
        cmd.envs(vars.iter().copied());
        let run = env.run_cmd(cmd, None);
        assert_ne!(run.code, 0, "{run}");
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{secret:?} was printed (vars {vars:?}, -v: {verbose})\n{run}"
        );
    }
}

/// Endpoints as users write them, passwords with characters that should be
/// percent-encoded included: none reaches a message.
const URLS_WITH_PASSWORDS: [&str; 6] = [
    "http://user:secretpass@127.0.0.1:0",
    "http://us er:secret/pass@127.0.0.1:0",
    "https://user:secretpass@127.0.0.1:0/",
    "http://user:secret/pass@127.0.0.1:0",
    "http://user:secret?pass@127.0.0.1:0",
    "user:secretpass@127.0.0.1:0",
];

#[test]
fn a_password_in_the_s3_endpoint_is_never_printed() {
    let env = TestEnv::local();
    env.write("x.txt", b"x");
    for url in URLS_WITH_PASSWORDS {
        let vars = [
            ("ARTIFACT_BACKEND", "s3"),
            ("ARTIFACT_S3_BUCKET", "b"),
            ("ARTIFACT_S3_REGION", "us-east-1"),
            ("ARTIFACT_S3_ENDPOINT", url),
            ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
            ("AWS_SECRET_ACCESS_KEY", "not-printed-either"),
        ];
        assert_url_secret_never_printed(&env, &vars, "secret");
        assert_url_secret_never_printed(&env, &vars, "not-printed-either");
    }
}

#[test]
fn a_password_in_the_organization_url_is_never_printed() {
    let env = TestEnv::local();
    env.write("x.txt", b"x");
    for url in URLS_WITH_PASSWORDS {
        let vars = [
            ("ARTIFACT_BACKEND", "hub"),
            ("SEMAPHORE_ARTIFACT_TOKEN", "tok"),
            ("SEMAPHORE_ORGANIZATION_URL", url),
            ("ARTIFACT_RETRY_ATTEMPTS", "1"),
        ];
        assert_url_secret_never_printed(&env, &vars, "secret");
    }
}

#[test]
fn a_password_in_a_proxy_url_is_never_printed() {
    let env = TestEnv::local();
    env.write("x.txt", b"x");
    for url in URLS_WITH_PASSWORDS {
        for (proxy_var, hub) in [
            ("HTTP_PROXY", "http://192.0.2.1"),
            ("HTTPS_PROXY", "https://192.0.2.1"),
            ("ALL_PROXY", "http://192.0.2.1"),
        ] {
            // The Hub's address (TEST-NET-1) is not loopback, so requests
            // go to the proxy, which refuses the connection (or the proxy
            // URL is refused): nothing leaves this machine.
            let vars = [
                ("ARTIFACT_BACKEND", "hub"),
                ("SEMAPHORE_ARTIFACT_TOKEN", "tok"),
                ("SEMAPHORE_ORGANIZATION_URL", hub),
                ("ARTIFACT_RETRY_ATTEMPTS", "1"),
                ("ARTIFACT_CONNECT_TIMEOUT", "2"),
                (proxy_var, url),
            ];
            assert_url_secret_never_printed(&env, &vars, "secret");
        }
    }
}
