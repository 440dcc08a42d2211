//! The Go CLI's own integration cases (`test/integration` of
//! semaphoreci/artifact) for standard input and for storage answering 5xx,
//! against our test Hub, asserting what that suite asserts. Like that suite,
//! every command runs with `-v`; its storage mock answers its failures with
//! 503 `temporarily unavailable`, as our test Hub's `fail_storage` does.

use crate::support::{data, Run, TestEnv};

const PREFIX: &str = "artifacts/jobs/job-1";
const SPOOLING: &str = "Detected stdin, saving it to a temporary file...";

fn key(rel: &str) -> String {
    format!("{PREFIX}/{rel}")
}

/// `artifact <args> -v`, as the Go suite's `executeCommand` runs it.
fn verbose(env: &TestEnv, args: &[&str]) -> Run {
    let mut args = args.to_vec();
    args.push("-v");
    env.run(&args)
}

/// The pushes from a pipe: `echo -n … | artifact push job - -d … -v`, and
/// the same with `/dev/stdin`; then a pull gives the bytes back.
#[test]
fn push_from_a_pipe_says_it_spools_and_round_trips() {
    let env = TestEnv::hub();
    for (source, name, text) in [
        ("-", "from-dash.txt", "hello from dash"),
        ("/dev/stdin", "from-dev-stdin.txt", "hello from /dev/stdin"),
    ] {
        env.run_with_stdin(&["push", "job", source, "-d", name, "-v"], text.as_bytes())
            .success()
            .stderr_has(SPOOLING)
            .stderr_has("Successfully pushed artifact for current job");
        verbose(&env, &["pull", "job", name])
            .success()
            .stderr_has("Successfully pulled artifact for current job");
        assert_eq!(env.read(name), text.as_bytes());
    }
}

/// `echo -n "hello from pipe" | artifact push job FILE -d … -v` pushes the
/// file, and never says it read stdin.
#[test]
fn a_file_path_with_a_pipe_open_pushes_the_file_and_says_nothing_of_stdin() {
    let env = TestEnv::hub();
    let file = env.write("source.txt", b"hello from file");
    let file = file.to_string_lossy().into_owned();
    let run = env.run_with_stdin(
        &["push", "job", &file, "-d", "not-from-pipe.txt", "-v"],
        b"hello from pipe",
    );
    run.success()
        .stderr_has("Successfully pushed artifact for current job");
    assert!(!run.stderr.contains("Detected stdin"), "{run}");
    verbose(&env, &["pull", "job", "not-from-pipe.txt"]).success();
    assert_eq!(env.read("not-from-pipe.txt"), b"hello from file");
}

/// The Go suite pipes `docker image save … | gzip`: binary bytes, several
/// MiB, through the pipe and back unchanged.
#[test]
fn binary_from_a_pipe_round_trips() {
    let env = TestEnv::hub();
    let bytes = data(3 * 1024 * 1024 + 17, 9);
    env.run_with_stdin(&["push", "job", "-", "-d", "image.gz", "-v"], &bytes)
        .success()
        .stderr_has(SPOOLING)
        .stderr_has("Successfully pushed artifact for current job");
    verbose(&env, &["pull", "job", "image.gz"]).success();
    assert_eq!(env.read("image.gz"), bytes);
}

/// One of the Go suite's 5xx cases: `failures` storage answers of 503 to
/// the command, then what it must print and how many storage requests it
/// makes (five attempts at most).
struct Case {
    args: &'static [&'static str],
    failures: usize,
    says: &'static [&'static str],
    never_says: &'static str,
    requests: usize,
}

fn run_case(case: &Case) {
    let env = TestEnv::hub();
    env.put_object(&key("file1.txt"), b"something");
    env.write("upload.txt", b"file1");
    env.hub_server().fail_storage(case.failures, 503);
    let run = verbose(&env, case.args);
    if case.failures >= 5 {
        assert_ne!(run.code, 0, "{run}");
    } else {
        run.success();
    }
    for text in case.says {
        run.stderr_has(text);
    }
    assert!(!run.stderr.contains(case.never_says), "{run}");
    let requests = env.hub_server().storage_requests();
    assert_eq!(
        requests.len(),
        case.requests,
        "{:?}: {requests:?}",
        case.args
    );
}

#[test]
fn pull_push_and_yank_on_5xx_give_up_after_five_attempts() {
    for case in [
        Case {
            args: &["pull", "job", "file1.txt"],
            failures: 10,
            says: &["Error pulling artifact"],
            never_says: "Successfully pulled artifact for current job",
            requests: 5,
        },
        Case {
            args: &["push", "job", "upload.txt", "-d", "file1.txt", "-f"],
            failures: 10,
            says: &["Error pushing artifact"],
            never_says: "Successfully pushed artifact",
            requests: 5,
        },
        Case {
            args: &["yank", "job", "file1.txt"],
            failures: 10,
            says: &["Error yanking artifact"],
            never_says: "Successfully yanked",
            requests: 5,
        },
    ] {
        run_case(&case);
    }
}

#[test]
fn pull_push_and_yank_on_5xx_eventually_succeed() {
    for case in [
        Case {
            args: &["pull", "job", "file1.txt"],
            failures: 2,
            says: &[
                "temporarily unavailable",
                "Successfully pulled artifact for current job",
            ],
            never_says: "Error pulling artifact",
            requests: 3,
        },
        Case {
            args: &["push", "job", "upload.txt", "-d", "file1.txt", "-f"],
            failures: 2,
            says: &[
                "temporarily unavailable",
                "Successfully pushed artifact for current job",
            ],
            never_says: "Error pushing artifact",
            requests: 3,
        },
        Case {
            args: &["yank", "job", "file1.txt"],
            failures: 2,
            says: &[
                "temporarily unavailable",
                "Successfully yanked 'artifacts/jobs/job-1/file1.txt' from current job artifacts.",
            ],
            never_says: "Error yanking artifact",
            requests: 3,
        },
    ] {
        run_case(&case);
    }
}
