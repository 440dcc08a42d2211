//! Test harness: a temp work dir, a store, and the built binary.
//!
//! `TestEnv` gives each test its own directory and a real store (the Hub
//! server of `testkit::hub`, a local-backend directory, an S3 server of
//! `testkit::s3`, or a bucket on Ceph's RADOS Gateway of `testkit::rgw`),
//! and runs
//! `CARGO_BIN_EXE_artifact` in that directory with a cleared environment.
//! Every run is checked for leaked secrets (the Hub token, any signed-URL
//! signature), so the whole suite proves that no output carries one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use testkit::fault::{Fault, FaultProxy, Quirks, Rule};
use testkit::hub::HubServer;
use testkit::rgw::Rgw;
use testkit::s3::{Bucket, Moto, S3Server};

/// The store a test talks to.
pub enum Store {
    Hub(HubServer),
    Local(tempfile::TempDir),
    /// s3s-fs in process: verifies signatures.
    S3(S3Server),
    /// moto_server: an independent S3 implementation.
    Moto(Moto),
    /// Ceph's RADOS Gateway: a real store, with its own differences.
    Rgw(Rgw),
}

pub struct TestEnv {
    pub work: tempfile::TempDir,
    pub store: Store,
    extra_env: Vec<(String, String)>,
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(&self) -> &Run {
        assert_eq!(self.code, 0, "expected success\n{self}");
        self
    }

    #[track_caller]
    pub fn failure(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "expected exit code {code}\n{self}");
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Run {
        assert!(self.stderr.contains(text), "stderr lacks {text:?}\n{self}");
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Run {
        assert!(self.stdout.contains(text), "stdout lacks {text:?}\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl TestEnv {
    pub fn hub() -> TestEnv {
        TestEnv::with(Store::Hub(HubServer::start()))
    }

    pub fn local() -> TestEnv {
        TestEnv::with(Store::Local(tempfile::tempdir().expect("temp dir")))
    }

    pub fn s3() -> TestEnv {
        TestEnv::with(Store::S3(S3Server::start()))
    }

    pub fn moto() -> TestEnv {
        TestEnv::with(Store::Moto(Moto::bucket()))
    }

    pub fn rgw() -> TestEnv {
        TestEnv::with(Store::Rgw(Rgw::bucket()))
    }

    pub fn s3_server(&self) -> &S3Server {
        match &self.store {
            Store::S3(s) => s,
            _ => panic!("not an s3s-fs test"),
        }
    }

    pub fn moto_bucket(&self) -> &Moto {
        match &self.store {
            Store::Moto(m) => m,
            _ => panic!("not a moto test"),
        }
    }

    fn with(store: Store) -> TestEnv {
        TestEnv {
            work: tempfile::tempdir().expect("temp dir"),
            store,
            extra_env: Vec::new(),
        }
    }

    pub fn hub_server(&self) -> &HubServer {
        match &self.store {
            Store::Hub(h) => h,
            _ => panic!("not a Hub test"),
        }
    }

    /// Puts a fault proxy with `quirks` between the binary and the store's
    /// server (the Hub's storage, s3s-fs or moto).
    pub fn fault_proxy(&mut self, quirks: Quirks) -> FaultProxy {
        let upstream = match &self.store {
            Store::Hub(h) => h.storage_url(),
            Store::S3(s) => s.endpoint(),
            Store::Moto(m) => m.endpoint.clone(),
            Store::Rgw(r) => r.endpoint.clone(),
            Store::Local(_) => panic!("a local store has no server"),
        };
        let proxy = FaultProxy::start(upstream.trim_start_matches("http://").parse().unwrap());
        proxy.set_quirks(quirks);
        match &self.store {
            // The Hub hands out signed URLs that point at the proxy.
            Store::Hub(h) => h.point_urls_at(&proxy.url()),
            _ => self.set_env("ARTIFACT_S3_ENDPOINT", &proxy.url()),
        }
        proxy
    }

    /// Sets a variable for every later run.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.extra_env.retain(|(n, _)| n != name);
        self.extra_env.push((name.to_string(), value.to_string()));
    }

    /// The work directory, where the binary runs.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.work.path().join(rel)
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create dirs");
        }
        fs::write(&path, bytes).expect("write file");
        path
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Puts an object straight into the store, as an earlier push would.
    pub fn put_object(&self, key: &str, bytes: &[u8]) {
        match &self.store {
            Store::Hub(h) => h.put_object(key, bytes),
            Store::Local(dir) => {
                let path = dir.path().join(key);
                fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                fs::write(path, bytes).expect("write object");
            }
            Store::S3(s) => s.put_object(key, bytes),
            Store::Moto(m) => m.put_object(key, bytes),
            Store::Rgw(r) => r.put_object(key, bytes),
        }
    }

    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        match &self.store {
            Store::Hub(h) => h.object(key),
            Store::Local(dir) => fs::read(dir.path().join(key)).ok(),
            Store::S3(s) => s.object(key),
            Store::Moto(m) => m.object(key),
            Store::Rgw(r) => r.object(key),
        }
    }

    /// Every stored key, sorted.
    pub fn keys(&self) -> Vec<String> {
        match &self.store {
            Store::Hub(h) => h.keys(),
            Store::Local(dir) => testkit::list_files(dir.path()),
            Store::S3(s) => s.keys(),
            Store::Moto(m) => m.keys(),
            Store::Rgw(r) => r.keys(),
        }
    }

    /// The command with a clean environment for this store.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_artifact"));
        cmd.args(args)
            .current_dir(self.work.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SEMAPHORE_JOB_ID", "job-1")
            .env("SEMAPHORE_WORKFLOW_ID", "wf-1")
            .env("SEMAPHORE_PROJECT_ID", "proj-1")
            .env("ARTIFACT_RETRY_DELAY", "5ms");
        match &self.store {
            Store::Hub(h) => {
                cmd.env("SEMAPHORE_ARTIFACT_TOKEN", h.token())
                    .env("SEMAPHORE_ORGANIZATION_URL", h.org_url());
            }
            Store::Local(dir) => {
                cmd.env("ARTIFACT_BACKEND", "local")
                    .env("ARTIFACT_LOCAL_DIR", dir.path());
            }
            Store::S3(s) => {
                cmd.env("ARTIFACT_BACKEND", "s3")
                    .env("ARTIFACT_S3_BUCKET", s.bucket())
                    .env("ARTIFACT_S3_ENDPOINT", s.endpoint())
                    .env("ARTIFACT_S3_REGION", "us-east-1")
                    .env("AWS_ACCESS_KEY_ID", s.access_key())
                    .env("AWS_SECRET_ACCESS_KEY", s.secret_key())
                    .env("AWS_EC2_METADATA_DISABLED", "true");
            }
            // Path-style addressing, as for any IP endpoint; RGW signs any region.
            Store::Moto(m) => bucket_env(&mut cmd, m),
            Store::Rgw(r) => bucket_env(&mut cmd, r),
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_cmd(self.command(args), None)
    }

    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        self.run_cmd(self.command(args), Some(input))
    }

    /// Runs the binary with its data (heap and thread stacks) limited to
    /// `mib` MiB (`ulimit -d`): a plan that grows without bound aborts at
    /// once instead of taking the machine's memory.
    pub fn run_within_memory(&self, args: &[&str], mib: u64) -> Run {
        let inner = self.command(args);
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -d {} && exec \"$0\" \"$@\"", mib * 1024))
            .arg(inner.get_program())
            .args(inner.get_args())
            .current_dir(self.work.path())
            .env_clear();
        for (name, value) in inner.get_envs() {
            if let Some(value) = value {
                cmd.env(name, value);
            }
        }
        self.run_cmd(cmd, None)
    }

    pub fn run_cmd(&self, mut cmd: Command, input: Option<&[u8]>) -> Run {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(input.map_or_else(Stdio::null, |_| Stdio::piped()));
        let mut child = cmd.spawn().expect("run the artifact binary");
        if let Some(bytes) = input {
            let mut stdin = child.stdin.take().expect("stdin");
            // The binary may rightly exit without reading it all.
            if let Err(e) = stdin.write_all(bytes) {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
            }
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("wait");
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        self.assert_no_secrets(&run);
        run
    }

    #[track_caller]
    fn assert_no_secrets(&self, run: &Run) {
        let mut secrets = vec![
            "SIGSECRET".to_string(),
            "X-Amz-Signature".to_string(),
            "Signature=".to_string(),
        ];
        match &self.store {
            Store::Hub(h) => secrets.push(h.token()),
            Store::S3(s) => secrets.push(s.secret_key().to_string()),
            Store::Moto(m) => secrets.push(m.secret_key().to_string()),
            Store::Rgw(r) => secrets.push(r.secret_key().to_string()),
            Store::Local(_) => {}
        }
        for secret in secrets {
            assert!(
                !run.stdout.contains(&secret) && !run.stderr.contains(&secret),
                "a secret ({secret}) leaked into the output\n{run}"
            );
        }
    }
}

/// The variables that point the binary at a bucket of a store that runs
/// as a process of its own.
fn bucket_env(cmd: &mut Command, bucket: &Bucket) {
    cmd.env("ARTIFACT_BACKEND", "s3")
        .env("ARTIFACT_S3_BUCKET", &bucket.bucket)
        .env("ARTIFACT_S3_ENDPOINT", &bucket.endpoint)
        .env("ARTIFACT_S3_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", bucket.access_key())
        .env("AWS_SECRET_ACCESS_KEY", bucket.secret_key())
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// Starts `racers` pushes of different files to one name at once, without
/// --force: exactly one must win (exit 0), the others exit 5, and the store
/// must hold the winner's bytes.
#[track_caller]
pub fn assert_one_racer_wins(env: &TestEnv, racers: usize) {
    for i in 0..racers {
        env.write(&format!("v{i}.txt"), format!("version {i}").as_bytes());
    }
    let children: Vec<std::process::Child> = (0..racers)
        .map(|i| {
            let name = format!("v{i}.txt");
            let mut cmd = env.command(&["push", "job", &name, "-d", "contested.txt"]);
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            cmd.spawn().expect("spawn")
        })
        .collect();
    let status = |c: std::process::Child| c.wait_with_output().expect("wait").status;
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| status(c).code().unwrap_or(-1))
        .collect();
    let winners: Vec<usize> = (0..racers).filter(|&i| codes[i] == 0).collect();
    assert_eq!(winners.len(), 1, "exit codes: {codes:?}");
    assert!(
        codes.iter().all(|&c| c == 0 || c == 5),
        "exit codes: {codes:?}"
    );
    let stored = env
        .object("artifacts/jobs/job-1/contested.txt")
        .expect("stored");
    assert_eq!(stored, format!("version {}", winners[0]).into_bytes());
}

/// The temporary files a pull keeps in `dir` (`.artifact-tmp~…`).
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(".artifact-tmp~"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `done` until it holds (`true`) or `within` has passed (`false`).
pub fn poll_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A pull through a stalled download: the GETs `rule` picks get their
/// head and half their body, then nothing for longer than any test waits;
/// `pull` is started as the caller set it up, and handed back once
/// `ready` holds (polled, with a deadline). If it never does, the pull is
/// killed and the test fails, naming `what` it waited for.
pub fn stalled_pull(
    proxy: &FaultProxy,
    rule: Rule,
    mut pull: Command,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Child {
    proxy.inject(rule, Fault::StallDuringDownload(Duration::from_secs(60)));
    let mut child = pull.spawn().unwrap();
    if !poll_until(Duration::from_secs(30), &mut ready) {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("the stalled pull never got that far: {what}");
    }
    child
}

/// Deterministic bytes of a given length (different per seed).
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs a test body once per backend: `scenario!(name, |env| { … })`.
///
/// A scenario that RGW cannot pass without work on the engine says so with
/// `scenario!(name, except rgw: "why", |env| { … })`: its `rgw` test is
/// still there, ignored with that reason, so every run lists the gap.
#[macro_export]
macro_rules! scenario {
    ($name:ident, |$env:ident| $body:block) => {
        $crate::scenario!(@stores $name, [], |$env| $body);
    };
    ($name:ident, except rgw: $why:literal, |$env:ident| $body:block) => {
        $crate::scenario!(@stores $name, [#[ignore = $why]], |$env| $body);
    };
    (@stores $name:ident, [$(#[$rgw:meta])*], |$env:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn hub() {
                #[allow(unused_mut)]
                let mut $env = $crate::support::TestEnv::hub();
                $body
            }

            #[test]
            fn local() {
                #[allow(unused_mut)]
                let mut $env = $crate::support::TestEnv::local();
                $body
            }

            #[test]
            fn s3() {
                #[allow(unused_mut)]
                let mut $env = $crate::support::TestEnv::s3();
                $body
            }

            #[test]
            fn moto() {
                #[allow(unused_mut)]
                let mut $env = $crate::support::TestEnv::moto();
                $body
            }

            #[test]
            $(#[$rgw])*
            fn rgw() {
                #[allow(unused_mut)]
                let mut $env = $crate::support::TestEnv::rgw();
                $body
            }
        }
    };
}
