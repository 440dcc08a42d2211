//! What only the Hub backend has: its wire protocol (request types, the
//! token, the URL pairs), retries against storage and the Hub, signed-URL
//! keys (decoding, refusing keys that escape the destination) and redaction.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::{data, TestEnv};
use testkit::http::Request as Recorded;
use testkit::hub::HubServer;

const PREFIX: &str = "artifacts/jobs/job-1";

fn key(rel: &str) -> String {
    format!("{PREFIX}/{rel}")
}

fn methods(requests: &[Recorded]) -> Vec<&str> {
    requests.iter().map(|r| r.method.as_str()).collect()
}

fn count(requests: &[Recorded], method: &str) -> usize {
    requests.iter().filter(|r| r.method == method).count()
}

/// Every regular file under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The `urls` array of a Hub answer, to rewrite in a hook.
fn urls(answer: &mut Value) -> &mut Vec<Value> {
    answer["urls"].as_array_mut().expect("urls is an array")
}

/// The storage listener's base URL (`http://127.0.0.1:PORT`).
fn storage_base(hub: &HubServer) -> String {
    let url = hub.signed_url("GET", "x");
    let end = url.find("/x?").expect("a loopback signed URL");
    url[..end].to_string()
}

// ------------------------------------------------------------ wire protocol

#[test]
fn push_omits_type_and_sends_the_raw_token() {
    let env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.run(&["push", "job", "x.txt"]).success();
    // After the check of what is stored at the name (type 2).
    let calls = &env.hub_server().hub_calls()[1..];
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(!calls[0].type_present, "{calls:?}");
    assert_eq!(calls[0].kind, 0);
    assert_eq!(calls[0].paths, vec![key("x.txt")]);
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(env.hub_server().token().as_str())
    );
}

#[test]
fn forced_push_sends_type_1() {
    let env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.run(&["push", "job", "x.txt", "-f"]).success();
    // After the check of what is stored at the name (type 2).
    let calls = &env.hub_server().hub_calls()[1..];
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].type_present);
    assert_eq!(calls[0].kind, 1);
    assert_eq!(calls[0].paths, vec![key("x.txt")]);
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(env.hub_server().token().as_str())
    );
}

#[test]
fn pull_sends_type_2() {
    let env = TestEnv::hub();
    env.put_object(&key("x.txt"), b"hello");
    env.run(&["pull", "job", "x.txt"]).success();
    let calls = env.hub_server().hub_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].type_present);
    assert_eq!(calls[0].kind, 2);
    assert_eq!(calls[0].paths, vec![key("x.txt")]);
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(env.hub_server().token().as_str())
    );
}

#[test]
fn yank_sends_type_3_and_deletes() {
    let env = TestEnv::hub();
    env.put_object(&key("x.txt"), b"hello");
    env.run(&["yank", "job", "x.txt"]).success();
    let calls = env.hub_server().hub_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].type_present);
    assert_eq!(calls[0].kind, 3);
    assert_eq!(calls[0].paths, vec![key("x.txt")]);
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(env.hub_server().token().as_str())
    );
    let requests = env.hub_server().storage_requests();
    assert_eq!(methods(&requests), ["DELETE"]);
    assert!(env.keys().is_empty(), "{:?}", env.keys());
}

#[test]
fn push_of_one_file_is_one_head_then_one_put_with_content_length() {
    let env = TestEnv::hub();
    let bytes = data(10_000, 1);
    env.write("x.bin", &bytes);
    env.run(&["push", "job", "x.bin"]).success();
    let requests = env.hub_server().storage_requests();
    assert_eq!(methods(&requests), ["HEAD", "PUT"], "{requests:?}");
    assert!(requests.iter().all(|r| r.key() == key("x.bin")));
    let put = &requests[1];
    assert_eq!(put.header("content-length"), Some("10000"), "{put:?}");
    assert_eq!(put.body_len, 10_000);
    assert_eq!(env.object(&key("x.bin")), Some(bytes));
}

#[test]
fn push_of_an_empty_file_sends_content_length_zero() {
    let env = TestEnv::hub();
    env.write("empty.txt", b"");
    env.run(&["push", "job", "empty.txt"]).success();
    let requests = env.hub_server().storage_requests();
    assert_eq!(methods(&requests), ["HEAD", "PUT"], "{requests:?}");
    assert_eq!(
        requests[1].header("content-length"),
        Some("0"),
        "{requests:?}"
    );
    assert_eq!(env.object(&key("empty.txt")), Some(Vec::new()));
}

#[test]
fn directory_push_with_one_existing_file_uploads_nothing() {
    let env = TestEnv::hub();
    env.write("dir/a.txt", b"a");
    env.write("dir/b.txt", b"b-new");
    env.write("dir/c.txt", b"c");
    env.put_object(&key("dir/b.txt"), b"b-old");
    env.run(&["push", "job", "dir"]).failure(5).stderr_has(
        "'artifacts/jobs/job-1/dir/b.txt' already exists in the remote storage; \
         delete it first, or use --force flag",
    );
    let requests = env.hub_server().storage_requests();
    assert_eq!(count(&requests, "PUT"), 0, "{requests:?}");
    assert_eq!(env.keys(), vec![key("dir/b.txt")]);
    assert_eq!(env.object(&key("dir/b.txt")), Some(b"b-old".to_vec()));
}

#[test]
fn forced_directory_push_overwrites_without_head() {
    let env = TestEnv::hub();
    env.write("dir/a.txt", b"a");
    env.write("dir/b.txt", b"b-new");
    env.write("dir/c.txt", b"c");
    env.put_object(&key("dir/b.txt"), b"b-old");
    env.run(&["push", "job", "dir", "-f"]).success();
    let requests = env.hub_server().storage_requests();
    assert_eq!(count(&requests, "HEAD"), 0, "{requests:?}");
    assert_eq!(count(&requests, "PUT"), 3, "{requests:?}");
    assert_eq!(
        env.keys(),
        vec![key("dir/a.txt"), key("dir/b.txt"), key("dir/c.txt")]
    );
    assert_eq!(env.object(&key("dir/b.txt")), Some(b"b-new".to_vec()));
}

// ------------------------------------------------------------ retries

#[test]
fn storage_503_twice_then_success_on_pull() {
    let env = TestEnv::hub();
    let bytes = data(50_000, 2);
    env.put_object(&key("x.bin"), &bytes);
    env.hub_server().fail_storage(2, 503);
    env.run(&["pull", "job", "x.bin"]).success();
    let requests = env.hub_server().storage_requests();
    assert_eq!(methods(&requests), ["GET", "GET", "GET"], "{requests:?}");
    assert_eq!(env.read("x.bin"), bytes);
}

#[test]
fn storage_429_then_success_on_pull() {
    let env = TestEnv::hub();
    let bytes = data(1000, 3);
    env.put_object(&key("x.bin"), &bytes);
    env.hub_server().fail_storage(1, 429);
    env.run(&["pull", "job", "x.bin"]).success();
    let requests = env.hub_server().storage_requests();
    assert_eq!(methods(&requests), ["GET", "GET"], "{requests:?}");
    assert_eq!(env.read("x.bin"), bytes);
}

#[test]
fn storage_503_forever_gives_up_after_five_attempts() {
    let env = TestEnv::hub();
    env.put_object(&key("x.bin"), b"data");
    env.hub_server().fail_storage(1000, 503);
    env.run(&["pull", "job", "x.bin"])
        .failure(1)
        .stderr_has("Error pulling artifact:");
    let requests = env.hub_server().storage_requests();
    assert_eq!(requests.len(), 5, "{requests:?}");
    assert_eq!(count(&requests, "GET"), 5);
    assert!(files_under(env.work.path()).is_empty());
}

#[test]
fn storage_501_on_put_is_not_retried() {
    let env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.hub_server().fail_storage(1, 501);
    env.run(&["push", "job", "x.txt", "-f"])
        .failure(1)
        .stderr_has("Error pushing artifact:");
    let requests = env.hub_server().storage_requests();
    assert_eq!(methods(&requests), ["PUT"], "{requests:?}");
    assert!(env.keys().is_empty());
}

#[test]
fn storage_404_on_get_is_not_found_and_not_retried() {
    let env = TestEnv::hub();
    let signer = env.hub_server().url_signer();
    env.hub_server().set_hub_hook(move |call, answer| {
        if call.kind == 2 {
            *urls(answer) = vec![json!({
                "url": signer("GET", "artifacts/jobs/job-1/gone.txt"),
                "method": "GET",
            })];
        }
    });
    env.run(&["pull", "job", "gone.txt"])
        .failure(4)
        .stderr_has("Error pulling artifact:");
    let requests = env.hub_server().storage_requests();
    assert_eq!(methods(&requests), ["GET"], "{requests:?}");
    assert!(
        files_under(env.work.path()).is_empty(),
        "{:?}",
        files_under(env.work.path())
    );
}

#[test]
fn hub_503_once_then_success() {
    let env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.hub_server().fail_hub(1, 503);
    env.run(&["push", "job", "x.txt"]).success();
    // The check of the name, again, then the push.
    assert_eq!(env.hub_server().hub_calls().len(), 3);
    assert_eq!(env.object(&key("x.txt")), Some(b"hello".to_vec()));
}

#[test]
fn hub_503_forever_gives_up_after_five_attempts() {
    let env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.hub_server().fail_hub(1000, 503);
    env.run(&["push", "job", "x.txt"])
        .failure(1)
        .stderr_has("Error pushing artifact:");
    assert_eq!(env.hub_server().hub_calls().len(), 5);
    assert!(env.hub_server().storage_requests().is_empty());
}

#[test]
fn forced_put_503_is_retried_with_the_whole_body() {
    let env = TestEnv::hub();
    let bytes = data(100_000, 4);
    env.write("x.bin", &bytes);
    env.hub_server().fail_storage(2, 503);
    env.run(&["push", "job", "x.bin", "-f"]).success();
    let requests = env.hub_server().storage_requests();
    assert_eq!(methods(&requests), ["PUT", "PUT", "PUT"], "{requests:?}");
    for put in &requests {
        assert_eq!(put.header("content-length"), Some("100000"), "{put:?}");
    }
    assert_eq!(env.object(&key("x.bin")), Some(bytes));
}

#[test]
fn head_503_is_retried_before_the_put() {
    let env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.hub_server().fail_storage(1, 503);
    env.run(&["push", "job", "x.txt"]).success();
    let requests = env.hub_server().storage_requests();
    assert_eq!(methods(&requests), ["HEAD", "HEAD", "PUT"], "{requests:?}");
    assert_eq!(env.object(&key("x.txt")), Some(b"hello".to_vec()));
}

// ------------------------------------------------------------ configuration and auth

#[test]
fn organization_url_path_is_replaced_by_the_api_path() {
    let mut env = TestEnv::hub();
    env.write("x.txt", b"hello");
    let org = format!("{}/some/page?tab=1", env.hub_server().org_url());
    env.set_env("SEMAPHORE_ORGANIZATION_URL", &org);
    env.run(&["push", "job", "x.txt"]).success();
    assert_eq!(env.hub_server().hub_calls().len(), 2);
    assert_eq!(env.object(&key("x.txt")), Some(b"hello".to_vec()));
}

#[test]
fn wrong_token_is_permission_denied() {
    let mut env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.set_env("SEMAPHORE_ARTIFACT_TOKEN", "not-the-token");
    env.run(&["push", "job", "x.txt"]).failure(6);
    assert_eq!(env.hub_server().hub_calls().len(), 1, "401 is not retried");
    assert!(env.hub_server().storage_requests().is_empty());
}

#[test]
fn missing_token_is_a_configuration_error() {
    let mut env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.set_env("SEMAPHORE_ARTIFACT_TOKEN", "");
    let run = env.run(&["push", "job", "x.txt"]);
    run.failure(3);
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "error: SEMAPHORE_ARTIFACT_TOKEN is not set"),
        "{run}"
    );
    assert!(env.hub_server().hub_calls().is_empty());
}

#[test]
fn missing_organization_url_is_a_configuration_error() {
    let mut env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.set_env("SEMAPHORE_ORGANIZATION_URL", "");
    let run = env.run(&["pull", "job", "x.txt"]);
    run.failure(3);
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "error: SEMAPHORE_ORGANIZATION_URL is not set"),
        "{run}"
    );
    assert!(env.hub_server().hub_calls().is_empty());
}

// ------------------------------------------------------------ bad Hub answers

#[test]
fn wrong_number_of_urls_uploads_nothing() {
    let env = TestEnv::hub();
    env.write("dir/a.txt", b"a");
    env.write("dir/b.txt", b"b");
    env.hub_server().set_hub_hook(|call, answer| {
        if call.kind == 0 {
            urls(answer).pop();
        }
    });
    env.run(&["push", "job", "dir"])
        .failure(1)
        .stderr_has("bad number of signed URLs");
    assert!(env.hub_server().storage_requests().is_empty());
    assert!(env.keys().is_empty());
}

#[test]
fn hub_error_on_push_is_shown() {
    let env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.hub_server().set_hub_hook(|_, answer| {
        answer["urls"] = json!([]);
        answer["error"] = json!("quota exceeded for this organization");
    });
    let run = env.run(&["push", "job", "x.txt"]);
    assert_ne!(run.code, 0, "{run}");
    run.stderr_has("Error pushing artifact:")
        .stderr_has("quota exceeded for this organization");
    assert!(env.hub_server().storage_requests().is_empty());
    assert!(env.keys().is_empty());
}

#[test]
fn pull_of_a_missing_path_is_not_found() {
    let env = TestEnv::hub();
    env.hub_server()
        .set_missing_error(Some("artifact does not exist".into()));
    env.run(&["pull", "job", "nothing.txt"])
        .failure(4)
        .stderr_has("Error pulling artifact:")
        .stderr_has("Please check if the artifact you are trying to pull exists.");
    assert_eq!(env.hub_server().hub_calls().len(), 1, "not retried");
    assert!(files_under(env.work.path()).is_empty());
}

#[test]
fn pull_of_a_missing_path_without_hub_error_is_not_found() {
    let env = TestEnv::hub();
    env.run(&["pull", "job", "nothing.txt"])
        .failure(4)
        .stderr_has("Error pulling artifact:")
        .stderr_has("artifacts/jobs/job-1/nothing.txt");
    assert!(env.hub_server().storage_requests().is_empty());
    assert!(files_under(env.work.path()).is_empty());
}

#[test]
fn yank_of_a_missing_path_is_not_found() {
    let env = TestEnv::hub();
    env.hub_server()
        .set_missing_error(Some("artifact does not exist".into()));
    env.run(&["yank", "job", "nothing.txt"])
        .failure(4)
        .stderr_has("Error yanking artifact:")
        .stderr_has("Please check if the artifact you are trying to yank exists.");
    assert_eq!(env.hub_server().hub_calls().len(), 1, "not retried");
    assert!(env.hub_server().storage_requests().is_empty());
}

// ------------------------------------------------------------ keys from signed URLs

/// Pulls `d` while the Hub also hands out `escape_url`; nothing may be
/// written, inside or outside the destination.
fn assert_escape_refused(env: &TestEnv, escape_url: String, name: &str) {
    env.put_object(&key("d/ok.txt"), b"fine");
    env.hub_server().set_hub_hook(move |call, answer| {
        if call.kind == 2 {
            urls(answer).push(json!({ "url": escape_url.clone(), "method": "GET" }));
        }
    });
    let run = env.run(&["pull", "job", "d"]);
    assert_ne!(run.code, 0, "{run}");
    run.stderr_has("Error pulling artifact:").stderr_has(name);
    assert!(
        files_under(env.work.path()).is_empty(),
        "{:?}\n{run}",
        files_under(env.work.path())
    );
    let mut dirs: Vec<PathBuf> = env.path("d").ancestors().map(Path::to_path_buf).collect();
    dirs.push(std::env::temp_dir());
    for dir in dirs {
        assert!(
            !dir.join(name).exists(),
            "{} was written\n{run}",
            dir.join(name).display()
        );
    }
    let parent = env.work.path().parent().expect("temp dir");
    if let Ok(entries) = fs::read_dir(parent) {
        for entry in entries.flatten() {
            assert_ne!(entry.file_name().to_string_lossy(), name, "{run}");
        }
    }
    let requests = env.hub_server().storage_requests();
    assert!(
        requests.iter().all(|r| !r.key().contains(name)),
        "{requests:?}"
    );
}

#[test]
fn pull_refuses_keys_with_dot_dot_segments() {
    let env = TestEnv::hub();
    let name = "escape-dotdot.txt";
    let url = env
        .hub_server()
        .signed_url("GET", &key(&format!("d/../../../../{name}")));
    assert!(url.contains("/../"), "{url}");
    assert_escape_refused(&env, url, name);
}

#[test]
fn pull_refuses_keys_with_percent_encoded_dot_dot_segments() {
    let env = TestEnv::hub();
    let name = "escape-pct.txt";
    let signed = env
        .hub_server()
        .signed_url("GET", &key(&format!("d/../../{name}")));
    let (path, query) = signed.split_once('?').expect("a query");
    let url = format!("{}?{query}", path.replace("/..", "/%2E%2E"));
    assert!(url.contains("/%2E%2E/%2E%2E/"), "{url}");
    assert_escape_refused(&env, url, name);
}

#[test]
fn pull_of_a_directory_ignores_a_sibling_prefix() {
    let env = TestEnv::hub();
    env.put_object(&key("dir/a.txt"), b"a");
    env.put_object(&key("dir/sub/b.txt"), b"b");
    env.put_object(&key("dirx/c.txt"), b"c");
    let signer = env.hub_server().url_signer();
    env.hub_server().set_hub_hook(move |call, answer| {
        // A Hub that lists by plain prefix also returns `dirx/…`.
        if call.kind == 2 {
            urls(answer).push(json!({
                "url": signer("GET", "artifacts/jobs/job-1/dirx/c.txt"),
                "method": "GET",
            }));
        }
    });
    env.run(&["pull", "job", "dir"]).success();
    assert_eq!(
        files_under(env.work.path()),
        vec!["dir/a.txt".to_string(), "dir/sub/b.txt".to_string()]
    );
    assert_eq!(env.read("dir/a.txt"), b"a");
    assert_eq!(env.read("dir/sub/b.txt"), b"b");
}

#[test]
fn odd_file_names_round_trip() {
    let env = TestEnv::hub();
    let names = [
        "a b.txt",
        "c+d.txt",
        "e#f.txt",
        "g?h.txt",
        "i%20j.txt",
        "100%.txt",
        "résumé 日本.txt",
    ];
    for (i, name) in names.iter().enumerate() {
        env.write(&format!("odd/{name}"), &data(100 + i, i as u8));
    }
    env.run(&["push", "job", "odd"]).success();
    let mut want: Vec<String> = names.iter().map(|n| key(&format!("odd/{n}"))).collect();
    want.sort();
    assert_eq!(env.keys(), want);

    fs::remove_dir_all(env.path("odd")).expect("remove the pushed dir");
    env.run(&["pull", "job", "odd"]).success();
    let mut local: Vec<String> = names.iter().map(|n| format!("odd/{n}")).collect();
    local.sort();
    assert_eq!(files_under(env.work.path()), local);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            env.read(&format!("odd/{name}")),
            data(100 + i, i as u8),
            "{name}"
        );
    }
}

#[test]
fn single_odd_file_name_round_trips() {
    let env = TestEnv::hub();
    let name = "a b+c#d?e%f é.txt";
    env.write(name, b"odd");
    env.run(&["push", "job", name]).success();
    assert_eq!(env.keys(), vec![key(name)]);
    fs::remove_file(env.path(name)).expect("remove");
    env.run(&["pull", "job", name]).success();
    assert_eq!(env.read(name), b"odd");
}

#[test]
fn stdin_push_sends_content_length() {
    let env = TestEnv::hub();
    let bytes = data(3000, 5);
    env.run_with_stdin(&["push", "job", "-", "-d", "from-stdin.bin"], &bytes)
        .success();
    let requests = env.hub_server().storage_requests();
    assert_eq!(methods(&requests), ["HEAD", "PUT"], "{requests:?}");
    assert_eq!(requests[1].header("content-length"), Some("3000"));
    assert_eq!(env.object(&key("from-stdin.bin")), Some(bytes));
}

/// The spool a piped push fills is private: seen through `/proc` while the
/// push is still reading a pipe held open, so it is the very file the push
/// uses, it is owner-only (whatever the umask allows), already gone from
/// the temporary directory, and the only file the push made there.
#[cfg(target_os = "linux")]
#[test]
fn stdin_spool_is_owner_only_and_unlinked_while_in_use() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let mut env = TestEnv::hub();
    let tmp = tempfile::tempdir().unwrap();
    env.set_env("TMPDIR", &tmp.path().to_string_lossy());
    let mut child = env
        .command(&["push", "job", "-", "-d", "spooled.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first half,").unwrap();
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let (fd, target) = loop {
        let found = fs::read_dir(&fds).unwrap().flatten().find_map(|entry| {
            let target = fs::read_link(entry.path()).ok()?;
            target
                .starts_with(tmp.path())
                .then(|| (entry.path(), target))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no spool opened in {:?}",
            tmp.path()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mode = fs::metadata(&fd).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o600, "{target:?} has mode {mode:o}");
    assert!(
        target.to_string_lossy().ends_with(" (deleted)"),
        "{target:?} is still in the directory"
    );
    assert!(
        files_under(tmp.path()).is_empty(),
        "{:?}",
        files_under(tmp.path())
    );
    stdin.write_all(b" second half").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.object(&key("spooled.bin")),
        Some(b"first half, second half".to_vec())
    );
    assert!(files_under(tmp.path()).is_empty());
}

/// A redirected file (`< file`) is sent as it is: no spool, and `-v` says
/// so instead of claiming a temporary file.
#[test]
fn stdin_from_a_regular_file_is_sent_in_place() {
    let mut env = TestEnv::hub();
    let tmp = tempfile::tempdir().unwrap();
    env.set_env("TMPDIR", &tmp.path().to_string_lossy());
    let file = env.write("input.bin", &data(5000, 6));
    let out = env
        .command(&["push", "job", "-", "-d", "redirected.bin", "-v"])
        .stdin(fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "Detected stdin, a regular file: sending it as it is, with no temporary file..."
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("saving it to a temporary file"),
        "{stderr}"
    );
    assert_eq!(env.object(&key("redirected.bin")), Some(data(5000, 6)));
}

// ------------------------------------------------------------ -v and secrets

#[test]
fn verbose_shows_every_storage_request_redacted() {
    let env = TestEnv::hub();
    let base = storage_base(env.hub_server());
    env.write("v.txt", b"verbose");
    let push = env.run(&["push", "job", "v.txt", "-v"]);
    push.success();
    let url = format!("{base}/artifacts/jobs/job-1/v.txt?<redacted>");
    push.stderr_has(&format!("HEAD {url}"))
        .stderr_has(&format!("PUT {url}"));
    assert!(!push.stderr.contains("Signature="), "{push}");

    fs::remove_file(env.path("v.txt")).expect("remove");
    let pull = env.run(&["-v", "pull", "job", "v.txt"]);
    pull.success().stderr_has(&format!("GET {url}"));
    assert!(!pull.stderr.contains("Signature="), "{pull}");

    let yank = env.run(&["yank", "job", "v.txt", "-v"]);
    yank.success().stderr_has(&format!("DELETE {url}"));
    assert!(!yank.stderr.contains("Signature="), "{yank}");
}

#[test]
fn without_verbose_no_request_lines() {
    let env = TestEnv::hub();
    let base = storage_base(env.hub_server());
    env.write("q.txt", b"quiet");
    let run = env.run(&["push", "job", "q.txt"]);
    run.success();
    assert!(!run.stderr.contains(&base), "{run}");
}

// ------------------------------------------------------------ connections

#[test]
fn many_small_files_reuse_storage_connections() {
    let env = TestEnv::hub();
    for i in 0..50 {
        env.write(&format!("many/f{i:02}.txt"), &data(64, i as u8));
    }
    env.run(&["push", "job", "many", "--parallel", "4"])
        .success();
    let requests = env.hub_server().storage_requests();
    assert_eq!(count(&requests, "HEAD"), 50);
    assert_eq!(count(&requests, "PUT"), 50);
    let conns = env.hub_server().storage_connections();
    assert!(conns <= 8, "{conns} storage connections for 100 requests");
    assert_eq!(env.keys().len(), 50);
}

#[test]
fn gcs_md5_is_verified_when_stated() {
    let env = TestEnv::hub();
    let server = env.hub_server();
    server.put_object("artifacts/jobs/job-1/g.bin", b"gcs bytes");
    server.set_goog_md5(Some(true));
    env.run(&["pull", "job", "g.bin"]).success();
    assert_eq!(env.read("g.bin"), b"gcs bytes");

    server.set_goog_md5(Some(false));
    env.run(&["pull", "job", "g.bin", "-d", "bad.bin"])
        .failure(7)
        .stderr_has("the data is damaged (MD5");
    assert!(!env.path("bad.bin").exists());
}

// ------------------------------------------------------------ a file and a tree under one name

/// A push first asks what is stored under its name: one more Hub request,
/// of the pull type, before the push's own.
#[test]
fn a_push_asks_what_is_stored_at_its_name_first() {
    let env = TestEnv::hub();
    env.write("x.txt", b"hello");
    env.write("d/a.txt", b"a");
    for (args, push_kind) in [
        (&["push", "job", "x.txt"][..], 0),
        (&["push", "job", "x.txt", "-f"], 1),
        (&["push", "job", "d"], 0),
    ] {
        let before = env.hub_server().hub_calls().len();
        env.run(args).success();
        let calls = env.hub_server().hub_calls();
        let kinds: Vec<u64> = calls[before..].iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [2, push_kind], "{args:?}: {calls:?}");
    }
}

/// The Go CLI's own test Hub answers a pull of a name with nothing stored
/// with a bare 500: a push's check of what is stored at its name takes
/// that as nothing there, asks once, and pushes (its suite's empty-file
/// push does exactly this).
#[test]
fn a_push_is_not_held_up_by_a_hub_that_answers_nothing_stored_with_500() {
    let env = TestEnv::hub();
    env.hub_server().set_missing_status(Some(500));
    env.write("x.txt", b"");
    env.run(&["push", "job", "x.txt"]).success();
    let kinds: Vec<u64> = env
        .hub_server()
        .hub_calls()
        .iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(kinds, [2, 0], "asked more than once");
    env.run(&["pull", "job", "x.txt", "-d", "back.txt"])
        .success();
    assert_eq!(env.read("back.txt"), b"");
}

/// A Hub that lists a name both as a file and as a tree: a pull or a yank
/// names both and touches nothing.
#[test]
fn a_name_the_hub_lists_as_a_file_and_a_tree_is_ambiguous() {
    let env = TestEnv::hub();
    env.put_object(&key("x/a.txt"), b"a");
    let signer = env.hub_server().url_signer();
    env.hub_server().set_hub_hook(move |call, answer| {
        let method = if call.kind == 2 { "GET" } else { "DELETE" };
        urls(answer).insert(
            0,
            json!({ "url": signer(method, &key("x")), "method": method }),
        );
    });
    for args in [&["pull", "job", "x"][..], &["yank", "job", "x"]] {
        env.run(args)
            .failure(1)
            .stderr_has(&format!("'{}'", key("x")))
            .stderr_has(&format!("'{}'", key("x/a.txt")));
    }
    assert!(env.hub_server().storage_requests().is_empty());
    assert!(files_under(env.work.path()).is_empty());
    assert_eq!(env.keys(), vec![key("x/a.txt")]);
}
