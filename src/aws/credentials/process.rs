//! `credential_process`: a profile names a command that prints credentials.
//!
//! The command line is run with `sh -c`, as the SDK does on Unix (`cmd /C`
//! on Windows, as the SDK does there), with our stdin and environment; it must print the JSON the AWS spec defines
//! (`Version` 1, `AccessKeyId`, `SecretAccessKey`, optional `SessionToken`
//! and ISO-8601 `Expiration`). A command that fails is reported with its
//! exit status and the first line of its stderr; its stdout is never quoted
//! (it may hold half a secret). Like the SDK, a command gets one minute.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Credentials;
use crate::error::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(60);
const OUTPUT_LIMIT: u64 = 1024 * 1024;

pub struct Process {
    pub command: String,
    /// "profile 'dev'", for messages.
    pub context: String,
}

enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

impl Process {
    pub fn fetch(&self) -> Result<Credentials> {
        self.execute(TIMEOUT)
    }

    fn execute(&self, timeout: Duration) -> Result<Credentials> {
        let what = format!("credential_process of {}", self.context);
        let mut child = shell(&self.command)
            .stdin(Stdio::inherit())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Config(format!("{what}: cannot start '{SHELL} …': {e}")))?;
        let (tx, rx) = mpsc::channel();
        let mut readers = 0;
        if let Some(out) = child.stdout.take() {
            readers += 1;
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(Output::Stdout(read_limited(out)));
            });
        }
        if let Some(err) = child.stderr.take() {
            readers += 1;
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(Output::Stderr(read_limited(err)));
            });
        }
        drop(tx);
        let deadline = Instant::now() + timeout;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        for _ in 0..readers {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Output::Stdout(bytes)) => stdout = bytes,
                Ok(Output::Stderr(bytes)) => stderr = bytes,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Config(format!(
                        "{what} did not finish within {} s; check the command",
                        timeout.as_secs()
                    )));
                }
            }
        }
        let status = child
            .wait()
            .map_err(|e| Error::Config(format!("{what}: waiting for it failed: {e}")))?;
        if !status.success() {
            let stderr = String::from_utf8_lossy(&stderr);
            let first = stderr.lines().map(str::trim).find(|l| !l.is_empty());
            let code = match status.code() {
                Some(code) => format!("exit status {code}"),
                None => "killed by a signal".to_string(),
            };
            return Err(Error::Config(match first {
                Some(line) => format!("{what} failed ({code}): {line}"),
                None => format!("{what} failed ({code}) and printed nothing on stderr"),
            }));
        }
        parse(&stdout, &what)
    }
}

#[cfg(not(windows))]
const SHELL: &str = "sh -c";
#[cfg(windows)]
const SHELL: &str = "cmd /C";

#[cfg(not(windows))]
fn shell(command: &str) -> Command {
    let mut shell = Command::new("sh");
    shell.arg("-c").arg(command);
    shell
}

/// cmd parses its own command line: the command goes in as it is written,
/// not quoted again as one argument.
#[cfg(windows)]
fn shell(command: &str) -> Command {
    use std::os::windows::process::CommandExt;
    let mut shell = Command::new("cmd");
    shell.arg("/C").raw_arg(command);
    shell
}

fn read_limited(stream: impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut limited = stream.take(OUTPUT_LIMIT);
    let _ = limited.read_to_end(&mut buf);
    // Drain the rest so the command never blocks on a full pipe.
    let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
    buf
}

fn parse(stdout: &[u8], what: &str) -> Result<Credentials> {
    let expected = "JSON with Version 1, AccessKeyId and SecretAccessKey";
    let value: serde_json::Value = serde_json::from_slice(stdout)
        .map_err(|_| Error::Config(format!("{what}: its output is not {expected}")))?;
    match value.get("Version").and_then(serde_json::Value::as_i64) {
        Some(1) => {}
        Some(other) => {
            return Err(Error::Config(format!(
                "{what}: its output has Version {other}; only Version 1 is supported"
            )))
        }
        None => {
            return Err(Error::Config(format!(
                "{what}: its output is not {expected}"
            )))
        }
    }
    super::from_json(&value, "SessionToken", |why| {
        Error::Config(format!("{what}: its output {why}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(command: &str) -> Process {
        Process {
            command: command.to_string(),
            context: "profile 'p'".to_string(),
        }
    }

    #[test]
    fn runs_a_script_through_sh() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("creds.sh");
        std::fs::write(
            &script,
            r#"#!/bin/sh
# The argument arrives as sh -c passes it.
echo "{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC\", \"SecretAccessKey\": \"proc-secret\",
 \"SessionToken\": \"proc-token\", \"Expiration\": \"2099-01-01T00:00:00Z\", \"Extra\": \"$1\"}"
"#,
        )
        .unwrap();
        let creds = process(&format!("sh '{}' arg", script.display()))
            .fetch()
            .unwrap();
        assert_eq!(creds.access_key_id, "AKIDPROC");
        assert_eq!(creds.secret_access_key, "proc-secret");
        assert_eq!(creds.session_token.as_deref(), Some("proc-token"));
        assert_eq!(
            creds.expires_at,
            crate::time::parse_iso8601("2099-01-01T00:00:00Z")
        );
        // Without a token or an expiry: long-lived keys.
        let creds = process(r#"printf '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S"}'"#)
            .fetch()
            .unwrap();
        assert_eq!((creds.session_token, creds.expires_at), (None, None));
    }

    #[test]
    fn failure_reports_the_first_stderr_line() {
        let err = process("echo '{\"SecretAccessKey\":\"leak\"}'; echo >&2; echo 'token expired, log in again' >&2; echo more >&2; exit 3")
            .fetch()
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        let text = err.to_string();
        assert_eq!(
            text,
            "credential_process of profile 'p' failed (exit status 3): token expired, log in again"
        );
        let err = process("exit 1").fetch().unwrap_err().to_string();
        assert!(err.contains("printed nothing on stderr"), "{err}");
    }

    #[test]
    fn output_is_checked_without_being_quoted() {
        let err = process("echo 'AKIA-not-json secret'")
            .fetch()
            .unwrap_err()
            .to_string();
        assert!(err.contains("not JSON with Version 1"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let err = process(r#"echo '{"Version":2,"AccessKeyId":"A","SecretAccessKey":"S"}'"#)
            .fetch()
            .unwrap_err()
            .to_string();
        assert!(err.contains("Version 2"), "{err}");
        let err = process(r#"echo '{"Version":1,"AccessKeyId":"A"}'"#)
            .fetch()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no SecretAccessKey"), "{err}");
    }

    #[test]
    fn a_hanging_command_is_stopped() {
        let started = Instant::now();
        let err = process("sleep 30")
            .execute(Duration::from_millis(200))
            .unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
