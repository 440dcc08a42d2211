//! The one error type of the program.
//!
//! Every failure a user can meet is one of these variants. Each says what
//! failed, why, and what to do about it, and maps to one documented exit code
//! (see the table in README.md and `exit_code`). Backends, the transfer engine
//! and the CLI all return this type; `main` is the only place that turns it
//! into an exit status, after `report::failure` has printed it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where an `AlreadyExists` conflict was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The object is already in the remote storage (push without --force).
    Remote,
    /// The file is already on the local disk (pull without --force).
    Local,
}

/// A signal that ended the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

#[derive(Debug)]
pub enum Error {
    /// The command line is wrong: unknown command, level or flag, missing or
    /// extra PATH. The text is the complaint; usage is printed after it.
    Usage(String),
    /// A variable or setting is missing or invalid. Printed as `error: …`.
    Config(String),
    /// Nothing exists at the remote path (pull, yank).
    NotFound(String),
    /// --include/--exclude selected no file of the directory: none stored
    /// (`Remote`: pull, list) or none on disk (`Local`: push).
    NothingSelected { side: Side, path: String },
    /// The target exists and --force was not given.
    AlreadyExists { side: Side, path: String },
    /// The remote key is held by the placeholder of a push that has not
    /// finished: another push is writing it, or one died part way. A push
    /// without --force stops (exit 5); a pull treats the key as absent.
    Pending(String),
    /// The storage refused our credentials (401, 403).
    PermissionDenied { what: String, hint: String },
    /// Bytes arrived, but not the bytes that were stored: a checksum
    /// mismatch. The bad data never reaches the destination path.
    Integrity { what: String, detail: String },
    /// The store refused an upload's bytes as damaged on the way
    /// (BadDigest, XAmzContentSHA256Mismatch) and stored nothing. Sent
    /// again before it is reported.
    DamagedUpload { what: String, detail: String },
    /// The local file system failed us: unreadable source, full disk,
    /// a destination whose parent is a file.
    LocalIo {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The request did not complete: refused connection, reset, timeout,
    /// a body shorter than announced. Retried before it is reported.
    Network { what: String, detail: String },
    /// The Hub or the storage answered with an error status.
    Remote {
        what: String,
        status: u16,
        detail: String,
        /// How long the server asked us to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The Hub or storage answered something we cannot use (bad JSON, wrong
    /// number of URLs, a key outside the requested path).
    Protocol(String),
    /// SIGINT or SIGTERM arrived: the run stopped and cleaned up.
    Interrupted(Signal),
    /// A push or pull failed part way: `done` of `total` files completed.
    /// `total` is `None` when the run stopped before every file was found
    /// (a listing that broke off).
    Partial {
        done: usize,
        total: Option<usize>,
        failed: Vec<String>,
        first: Box<Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The documented exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Config(_) => 3,
            Error::NotFound(_) => 4,
            Error::NothingSelected {
                side: Side::Remote, ..
            } => 4,
            Error::NothingSelected {
                side: Side::Local, ..
            } => 8,
            Error::AlreadyExists { .. } | Error::Pending(_) => 5,
            Error::PermissionDenied { .. } => 6,
            Error::Integrity { .. } | Error::DamagedUpload { .. } => 7,
            Error::LocalIo { .. } => 8,
            Error::Network { .. } | Error::Remote { .. } | Error::Protocol(_) => 1,
            Error::Interrupted(signal) => signal.exit_code(),
            Error::Partial { first, .. } => first.exit_code(),
        }
    }

    /// Whether trying the same request again may succeed: connection
    /// problems, bytes damaged on the way up, and the statuses
    /// `retryable_status` names. This is the one rule: `http` turns those
    /// statuses into errors, and `retry` (so the scheduler, the credential
    /// sources and the region lookup) retries what this says.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Network { .. } | Error::DamagedUpload { .. } => true,
            Error::Remote { status, .. } => Error::retryable_status(*status),
            _ => false,
        }
    }

    /// Whether an answer with this status is worth another attempt: 429,
    /// and 5xx other than 501 (Not Implemented stays so).
    pub fn retryable_status(status: u16) -> bool {
        status == 429 || (status >= 500 && status != 501)
    }

    /// Whether the store asked us to slow down: 429, or 503 (S3's
    /// SlowDown). The transfer budget shrinks on these.
    pub fn is_throttle(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                status: 429 | 503,
                ..
            }
        )
    }

    /// A 412: a conditional request whose condition no longer holds.
    pub fn is_precondition_failed(&self) -> bool {
        matches!(self, Error::Remote { status: 412, .. })
    }

    /// The wait a server asked for before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Remote { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A Remote error with no Retry-After.
    pub fn remote(what: impl Into<String>, status: u16, detail: impl Into<String>) -> Error {
        Error::Remote {
            what: what.into(),
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn local_io(action: &'static str, path: &Path, source: io::Error) -> Error {
        Error::LocalIo {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) | Error::Config(msg) | Error::Protocol(msg) => f.write_str(msg),
            Error::NotFound(what) => {
                write!(f, "'{what}' does not exist in the remote storage")
            }
            Error::NothingSelected {
                side: Side::Remote,
                path,
            } => write!(
                f,
                "no file stored under '{path}' matches the --include/--exclude patterns; 'artifact list' shows what is stored"
            ),
            Error::NothingSelected {
                side: Side::Local,
                path,
            } => write!(
                f,
                "no file under '{path}' matches the --include/--exclude patterns; check them against the directory"
            ),
            Error::AlreadyExists {
                side: Side::Remote,
                path,
            } => write!(
                f,
                "'{path}' already exists in the remote storage; delete it first, or use --force flag"
            ),
            Error::Pending(path) => write!(
                f,
                "'{path}' is held by a push that has not finished: another push is writing it now, or one died part way; if none is running, yank it, or push with --force flag"
            ),
            Error::AlreadyExists {
                side: Side::Local,
                path,
            } => write!(
                f,
                "'{path}' already exists locally; delete it first, or use --force flag"
            ),
            Error::PermissionDenied { what, hint } => {
                write!(f, "{what}: permission denied; {hint}")
            }
            Error::Integrity { what, detail } => write!(
                f,
                "{what}: the data is damaged ({detail}); nothing was written, run the command again"
            ),
            Error::DamagedUpload { what, detail } => write!(
                f,
                "{what}: the store received other bytes than were sent ({detail}) and stored nothing; check what lies between this machine and the store (a proxy that rewrites bodies, faulty memory or network hardware), then push again"
            ),
            Error::LocalIo {
                action,
                path,
                source,
            } => write!(f, "failed to {action} '{}': {}", path.display(), io_reason(source)),
            Error::Network { what, detail } => write!(
                f,
                "{what}: {detail}; check the network connection and try again"
            ),
            Error::Remote {
                what,
                status,
                detail,
                ..
            } => {
                write!(f, "{what} failed with {status} status code")?;
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
            Error::Interrupted(signal) => write!(
                f,
                "interrupted by {}; what was in flight was cancelled and cleaned up",
                signal.name()
            ),
            Error::Partial {
                done,
                total,
                failed,
                first,
            } => {
                match total {
                    Some(total) => write!(f, "{first} ({done} of {total} files transferred")?,
                    None => write!(f, "{first} ({done} files transferred before that")?,
                }
                if !failed.is_empty() {
                    let shown: Vec<&str> = failed.iter().take(5).map(String::as_str).collect();
                    write!(f, "; not transferred: {}", shown.join(", "))?;
                    if failed.len() > shown.len() {
                        write!(f, " and {} more", failed.len() - shown.len())?;
                    }
                }
                write!(f, ")")
            }
        }
    }
}

/// An io::Error's text with a hint for the cases users meet most.
fn io_reason(err: &io::Error) -> String {
    let hint = match err.kind() {
        io::ErrorKind::NotFound => "; check the path",
        io::ErrorKind::PermissionDenied => "; check the file permissions",
        io::ErrorKind::StorageFull => "; free some disk space",
        io::ErrorKind::NotADirectory => "; a parent of this path is a file",
        _ => "",
    };
    format!("{err}{hint}")
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_match_the_documented_table() {
        let io = || io::Error::other("x");
        let cases: Vec<(Error, u8)> = vec![
            (Error::Usage("x".into()), 2),
            (Error::Config("x".into()), 3),
            (Error::NotFound("x".into()), 4),
            (
                Error::NothingSelected {
                    side: Side::Remote,
                    path: "x".into(),
                },
                4,
            ),
            (
                Error::NothingSelected {
                    side: Side::Local,
                    path: "x".into(),
                },
                8,
            ),
            (
                Error::AlreadyExists {
                    side: Side::Remote,
                    path: "x".into(),
                },
                5,
            ),
            (Error::Pending("x".into()), 5),
            (
                Error::PermissionDenied {
                    what: "x".into(),
                    hint: "y".into(),
                },
                6,
            ),
            (
                Error::Integrity {
                    what: "x".into(),
                    detail: "y".into(),
                },
                7,
            ),
            (Error::local_io("read", Path::new("x"), io()), 8),
            (
                Error::Network {
                    what: "x".into(),
                    detail: "y".into(),
                },
                1,
            ),
            (
                Error::Remote {
                    what: "x".into(),
                    status: 500,
                    retry_after: None,
                    detail: String::new(),
                },
                1,
            ),
            (Error::Protocol("x".into()), 1),
            (
                Error::DamagedUpload {
                    what: "x".into(),
                    detail: "y".into(),
                },
                7,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err:?}");
        }
    }

    #[test]
    fn retryable_statuses() {
        let remote = |status| Error::remote("x", status, "");
        for s in [429, 500, 502, 503, 504] {
            assert!(remote(s).is_retryable(), "{s}");
            assert!(Error::retryable_status(s), "{s}");
        }
        for s in [200, 206, 304, 400, 401, 403, 404, 412, 501] {
            assert!(!remote(s).is_retryable(), "{s}");
            assert!(!Error::retryable_status(s), "{s}");
        }
    }

    #[test]
    fn conflict_messages_use_the_go_wording() {
        let remote = Error::AlreadyExists {
            side: Side::Remote,
            path: "artifacts/jobs/1/a".into(),
        };
        assert_eq!(
            remote.to_string(),
            "'artifacts/jobs/1/a' already exists in the remote storage; delete it first, or use --force flag"
        );
        let local = Error::AlreadyExists {
            side: Side::Local,
            path: "a".into(),
        };
        assert_eq!(
            local.to_string(),
            "'a' already exists locally; delete it first, or use --force flag"
        );
    }

    #[test]
    fn partial_failures_name_what_failed_and_keep_the_first_exit_code() {
        let err = Error::Partial {
            done: 2,
            total: Some(4),
            failed: vec!["a".into(), "b".into()],
            first: Box::new(Error::NotFound("a".into())),
        };
        assert_eq!(err.exit_code(), 4);
        assert!(err
            .to_string()
            .contains("2 of 4 files transferred; not transferred: a, b"));
    }
}
