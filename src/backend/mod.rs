//! Where artifacts are stored: one trait, one implementation per store.
//!
//! The seed's Backend interface (push, pull, yank, exists) cut into the
//! object-level steps the transfer engine drives, so that walking, conflict
//! checks, parallel workers, retries of whole operations and atomic writes
//! exist once (in `transfer`) and every backend gets them. Batch steps
//! (`prepare_push`, `list`) let a backend answer for many objects in one
//! round trip: the Hub hands out every signed URL in one POST.

pub mod hub;
pub mod local;
pub mod s3;
mod signed_url;

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::config::{BackendKind, Env, Settings};
use crate::error::{Error, Result};
use crate::progress;

/// One object about to be written.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    /// Backend-specific address: a signed URL, or the key itself.
    pub locator: String,
}

/// One object found in the store.
#[derive(Debug, Clone)]
pub struct RemoteObject {
    pub key: String,
    /// The size the store reports, when it reports one.
    pub size: Option<u64>,
    /// Backend-specific address: a signed URL, or the key itself.
    pub locator: String,
}

/// Where the bytes of a push come from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A regular file of a known size.
    File(&'a Path, u64),
    /// Standard input, read once, to its end.
    Stdin,
}

/// Why objects are listed: the Hub hands out different URLs for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Pull,
    Yank,
}

pub trait Backend: Sync {
    /// Whether an object is stored at exactly `key` (the seed's Exists).
    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.list(key, Intent::Pull)?.iter().any(|o| o.key == key))
    }

    /// Gets ready to write `keys`. Without `force`, fails with
    /// `AlreadyExists` naming the first key that is already stored, before
    /// anything is written. Returns one `Upload` per key, in order. The
    /// default asks `exists` for each key; the Hub and S3 answer for a whole
    /// tree at once.
    fn prepare_push(&self, keys: &[String], force: bool) -> Result<Vec<Upload>> {
        if !force {
            for key in keys {
                if self.exists(key)? {
                    return Err(Error::AlreadyExists {
                        side: crate::error::Side::Remote,
                        path: key.clone(),
                    });
                }
            }
        }
        Ok(keys
            .iter()
            .map(|k| Upload {
                key: k.clone(),
                locator: k.clone(),
            })
            .collect())
    }

    /// Writes one object and returns its size. Without `force`, a store
    /// that can refuse to replace an object which appeared since
    /// `prepare_push` does so, with `AlreadyExists`.
    fn put(&self, upload: &Upload, source: Source<'_>, force: bool) -> Result<u64>;

    /// The object at `key` and every object under `key/`.
    fn list(&self, key: &str, intent: Intent) -> Result<Vec<RemoteObject>>;

    /// What `list` finds, handed to `page` a batch at a time as the store
    /// answers, so that work on the first objects can start while the rest
    /// are still being listed. `page` answers whether to go on. The default
    /// hands over everything `list` returns as one batch; S3 lists in pages.
    fn list_pages(
        &self,
        key: &str,
        intent: Intent,
        page: &mut dyn FnMut(Vec<RemoteObject>) -> Result<bool>,
    ) -> Result<()> {
        page(self.list(key, intent)?).map(drop)
    }

    /// Writes the object's bytes into `out`, an empty file, and returns how
    /// many were written. A short or damaged body is an error.
    fn get(&self, object: &RemoteObject, out: &mut File) -> Result<u64>;

    fn delete(&self, object: &RemoteObject) -> Result<()>;
}

/// The backend that ARTIFACT_BACKEND names, configured from the environment.
pub fn from_settings(settings: &Settings, env: &Env) -> Result<Box<dyn Backend>> {
    match settings.backend {
        BackendKind::Hub => Ok(Box::new(hub::Hub::from_env(env, settings)?)),
        BackendKind::Local => Ok(Box::new(local::Local::from_env(env)?)),
        BackendKind::S3 => Ok(Box::new(s3::S3::from_env(env, settings)?)),
    }
}

/// Copies a download's body to `write`, counting progress. A read failure
/// is a network error (the download is retried), a write failure a local one.
pub fn copy_body(
    body: &mut impl Read,
    mut write: impl FnMut(&[u8]) -> io::Result<()>,
    key: &str,
) -> Result<u64> {
    // On the worker's stack: no allocation per file.
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Network {
                    what: format!("download of '{key}'"),
                    detail: e.to_string(),
                })
            }
        };
        progress::add(n as u64);
        write(&buf[..n]).map_err(|e| Error::local_io("write", Path::new(key), e))?;
        total += n as u64;
    }
}

/// Checks that a file being pushed still has the size it was planned with:
/// a file that grows or shrinks meanwhile (a log still being written) is
/// an error rather than a silently truncated object.
pub fn check_unchanged(path: &Path, size: u64) -> Result<()> {
    let now = std::fs::metadata(path)
        .map_err(|e| Error::local_io("read", path, e))?
        .len();
    if now == size {
        return Ok(());
    }
    Err(Error::local_io(
        "push",
        path,
        io::Error::other(format!(
            "the file changed size while being pushed ({size} -> {now} bytes); push it again once it is complete"
        )),
    ))
}

/// Checks that `got` bytes are what the store announced.
pub fn check_length(key: &str, expected: Option<u64>, got: u64) -> Result<()> {
    match expected {
        Some(want) if want != got => Err(Error::Network {
            what: format!("download of '{key}'"),
            detail: format!("received {got} bytes of {want}"),
        }),
        _ => Ok(()),
    }
}
