//! Downloads into their temporary files, checked on the way in.
//!
//! Every backend's GET arrives here as a `Download`: a reader plus what the
//! store stated. One set of adapters counts the bytes, hashes them the way
//! the stated checksum was computed (SHA-256, S3's composite of parts, or
//! the storage's MD5), checks the length and verifies before the file is
//! renamed into place. A single-stream download that breaks part way goes
//! on from the bytes already written (`Range: bytes=N-` with `If-Match`);
//! a store that ignores the range, or an object that changed, starts over.
//! A large object comes down as parallel ranges, each a request of its own
//! in the budget, written at its offset.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::scheduler::Ctx;
use super::Slot;
use crate::atomic::TempFile;
use crate::backend::{Backend, ByteRange, Download, RemoteObject};
use crate::checksum::{Expected, StreamHasher};
use crate::error::{Error, Result, Side};
use crate::{checksum, interrupt, log, progress};

/// Objects larger than this many ranges come down in parallel ranges.
const RANGED_MIN: u64 = 4;

/// Fetches `object` to `path` and fills `slot` with the bytes written. A
/// large object is split into ranges that finish on other workers.
pub fn fetch<'env>(
    ctx: &Ctx<'_, '_, 'env>,
    backend: &'env dyn Backend,
    object: RemoteObject,
    path: PathBuf,
    force: bool,
    slot: Arc<Slot>,
) {
    if ctx.stopping() {
        return;
    }
    let ranged = match (object.size, backend.range_size()) {
        (Some(size), Some(range)) if size > RANGED_MIN * range && ctx.ceiling() > 1 => {
            Some((size, range))
        }
        _ => None,
    };
    let result = match ranged {
        Some((size, range)) => match Ranged::start(backend, object, path, force, size, range) {
            Ok(ranged) => return ranged.first(ctx, slot),
            Err(e) => Err(e),
        },
        None => whole(ctx, backend, &object, &path, force),
    };
    finish(ctx, &slot, result);
}

fn finish(ctx: &Ctx<'_, '_, '_>, slot: &Slot, result: Result<u64>) {
    match &result {
        Ok(_) => progress::file_done(),
        Err(_) => ctx.stop(),
    }
    let _ = slot.set(result);
}

/// One GET, resumed where it broke, into a temporary file renamed on success.
fn whole(
    ctx: &Ctx<'_, '_, '_>,
    backend: &dyn Backend,
    object: &RemoteObject,
    path: &Path,
    force: bool,
) -> Result<u64> {
    let mut temp = TempFile::create(path)?;
    let mut landing = Landing::new(&object.key);
    let what = format!("GET '{}'", object.key);
    ctx.request(&what, object.size.unwrap_or(0), |_| {
        let from = landing.written;
        let range = ByteRange {
            from,
            len: None,
            if_match: landing.etag.as_deref().filter(|_| from > 0),
        };
        let download = match backend.get(object, range) {
            Err(e) if from > 0 && e.is_precondition_failed() => {
                // The object changed since the first bytes: start over.
                log::debug(|| {
                    format!(
                        "'{}' changed during the download; starting over",
                        object.key
                    )
                });
                landing.restart(temp.file())?;
                backend.get(object, ByteRange::default())?
            }
            other => other?,
        };
        landing.receive(temp.file(), download, object.size)
    })?;
    let written = landing.written;
    landing.verify()?;
    temp.commit(path, force, &path.display().to_string(), Side::Local)?;
    Ok(written)
}

/// The state of one single-stream download across its attempts.
struct Landing<'k> {
    key: &'k str,
    written: u64,
    /// The ETag of the first answer, for `If-Match` on resumes.
    etag: Option<String>,
    /// Set by the first answer: what the bytes must hash to.
    check: Option<Check>,
    answered: bool,
}

enum Check {
    Sha256(Expected, StreamHasher),
    Md5(String, md5::Context),
}

impl<'k> Landing<'k> {
    fn new(key: &'k str) -> Landing<'k> {
        Landing {
            key,
            written: 0,
            etag: None,
            check: None,
            answered: false,
        }
    }

    fn restart(&mut self, file: &mut File) -> Result<()> {
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| Error::local_io("write", Path::new(self.key), e))?;
        *self = Landing::new(self.key);
        Ok(())
    }

    /// Writes one answer's body after what is already there.
    fn receive(
        &mut self,
        file: &mut File,
        download: Download<'_>,
        listed_size: Option<u64>,
    ) -> Result<()> {
        if download.offset != self.written {
            if download.offset != 0 {
                return Err(Error::Protocol(format!(
                    "the store answered a request for '{}' from byte {} with bytes from {}",
                    self.key, self.written, download.offset
                )));
            }
            log::debug(|| format!("'{}': the store sent the whole object again", self.key));
            self.restart(file)?;
        }
        if !self.answered {
            self.answered = true;
            self.etag = download.etag.clone();
            self.check = match (download.sha256.clone(), download.md5.clone()) {
                (Some(expected), _) => {
                    let hasher = StreamHasher::new(&expected);
                    Some(Check::Sha256(expected, hasher))
                }
                (None, Some(md5)) => Some(Check::Md5(md5, md5::Context::new())),
                _ => None,
            };
        }
        let expected_end = download.length.map(|n| download.offset + n).or(listed_size);
        let mut body = download.body;
        let (check, written) = (&mut self.check, &mut self.written);
        // Bytes count as written as soon as they are: a body cut short
        // keeps what arrived for the next attempt.
        copy_body(&mut body, self.key, |chunk| {
            io::Write::write_all(file, chunk)?;
            *written += chunk.len() as u64;
            match check {
                Some(Check::Sha256(_, h)) => h.update(chunk),
                Some(Check::Md5(_, h)) => h.consume(chunk),
                None => {}
            }
            Ok(())
        })?;
        check_length(self.key, expected_end, self.written)
    }

    /// Whether the bytes are what the store stated.
    fn verify(self) -> Result<()> {
        let (actual, stated, algorithm) = match self.check {
            Some(Check::Sha256(expected, hasher)) => {
                let actual = hasher.finish();
                if expected.matches(&actual) {
                    return Ok(());
                }
                (actual, expected.value().to_string(), "SHA-256")
            }
            Some(Check::Md5(stated, hasher)) => {
                let actual = checksum::base64(&hasher.finalize().0);
                if actual == stated {
                    return Ok(());
                }
                (actual, stated, "MD5")
            }
            None => {
                log::debug(|| {
                    format!(
                        "'{}': the store states no checksum for it; checked its length only",
                        self.key
                    )
                });
                return Ok(());
            }
        };
        Err(Error::Integrity {
            what: format!("download of '{}'", self.key),
            detail: format!("{algorithm} {actual}, the store says {stated}"),
        })
    }
}

/// A large object fetched as ranges, each its own request in the budget.
/// The first range's answer gives the ETag every other range must match.
struct Ranged<'env> {
    backend: &'env dyn Backend,
    object: RemoteObject,
    path: PathBuf,
    force: bool,
    size: u64,
    range: u64,
    temp: Mutex<Option<TempFile>>,
    /// A second handle on the temporary file, written at offsets.
    file: File,
    etag: Mutex<Option<String>>,
    left: AtomicUsize,
    failure: Mutex<Option<Error>>,
}

impl<'env> Ranged<'env> {
    fn start(
        backend: &'env dyn Backend,
        object: RemoteObject,
        path: PathBuf,
        force: bool,
        size: u64,
        range: u64,
    ) -> Result<Arc<Ranged<'env>>> {
        let mut temp = TempFile::create(&path)?;
        let write_error = |e| Error::local_io("write", &path, e);
        temp.file().set_len(size).map_err(write_error)?;
        let file = temp.file().try_clone().map_err(write_error)?;
        Ok(Arc::new(Ranged {
            backend,
            left: AtomicUsize::new(size.div_ceil(range) as usize),
            object,
            force,
            size,
            range,
            temp: Mutex::new(Some(temp)),
            file,
            etag: Mutex::new(None),
            failure: Mutex::new(None),
            path,
        }))
    }

    /// Fetches the first range, then queues the others.
    fn first(self: Arc<Self>, ctx: &Ctx<'_, '_, 'env>, slot: Arc<Slot>) {
        let ok = self.fetch_range(ctx, 0);
        if ok {
            let count = self.size.div_ceil(self.range);
            for index in 1..count {
                let ranged = Arc::clone(&self);
                let slot = Arc::clone(&slot);
                ctx.follow_up(Box::new(move |ctx| {
                    let offset = index * ranged.range;
                    if !ctx.stopping() && ranged.healthy() {
                        ranged.fetch_range(ctx, offset);
                    }
                    ranged.release(ctx, &slot);
                }));
            }
        } else {
            // The other ranges will never run: release them all.
            self.left.store(1, Ordering::SeqCst);
        }
        self.release(ctx, &slot);
    }

    fn healthy(&self) -> bool {
        self.failure.lock().map(|f| f.is_none()).unwrap_or(false)
    }

    /// One range into place; false (with the failure kept) if it failed.
    fn fetch_range(&self, ctx: &Ctx<'_, '_, 'env>, offset: u64) -> bool {
        let len = self.range.min(self.size - offset);
        let key = &self.object.key;
        let etag = self.etag.lock().ok().and_then(|e| e.clone());
        let what = format!("GET '{key}' bytes {offset}-{}", offset + len - 1);
        let result = ctx.request(&what, len, |_| {
            let range = ByteRange {
                from: offset,
                len: Some(len),
                if_match: etag.as_deref(),
            };
            let download = self.backend.get(&self.object, range)?;
            if download.offset != offset || download.length != Some(len) {
                return Err(Error::Protocol(format!(
                    "the store answered range {offset}-{} of '{key}' with {} bytes from {}",
                    offset + len - 1,
                    download
                        .length
                        .map_or("an unknown number of".into(), |n| n.to_string()),
                    download.offset
                )));
            }
            if offset == 0 {
                if let Ok(mut e) = self.etag.lock() {
                    *e = download.etag.clone();
                }
            }
            let mut at = offset;
            let mut body = download.body;
            let n = copy_body(&mut body, key, |chunk| {
                write_at(&self.file, chunk, at)?;
                at += chunk.len() as u64;
                Ok(())
            })?;
            check_length(key, Some(len), n)
        });
        match result {
            Ok(()) => true,
            Err(e) => {
                if let Ok(mut failure) = self.failure.lock() {
                    failure.get_or_insert(e);
                }
                ctx.stop();
                false
            }
        }
    }

    /// Counts one range done; the last one renames the file into place
    /// (or drops it) and fills the slot.
    fn release(&self, ctx: &Ctx<'_, '_, 'env>, slot: &Slot) {
        if self.left.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let temp = self.temp.lock().ok().and_then(|mut t| t.take());
        let failure = self.failure.lock().ok().and_then(|mut f| f.take());
        let result = match (temp, failure) {
            (_, Some(e)) => Err(e),
            (None, None) => return,
            (Some(_), None) if ctx.stopping() => return,
            (Some(temp), None) => {
                log::debug(|| {
                    format!(
                        "'{}': downloaded in {} ranges; checked lengths only",
                        self.object.key,
                        self.size.div_ceil(self.range)
                    )
                });
                temp.commit(
                    &self.path,
                    self.force,
                    &self.path.display().to_string(),
                    Side::Local,
                )
                .map(|()| self.size)
            }
        };
        finish(ctx, slot, result);
    }
}

/// Copies a download's body to `write`, counting progress. A read failure
/// is a network error (the download is retried), a write failure a local one.
fn copy_body(
    body: &mut dyn Read,
    key: &str,
    mut write: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<u64> {
    // On the worker's stack: no allocation per file.
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        interrupt::check()?;
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

/// Checks that `got` bytes are what the store announced: fewer is a
/// connection cut short, retried.
fn check_length(key: &str, expected: Option<u64>, got: u64) -> Result<()> {
    match expected {
        Some(want) if want != got => Err(Error::Network {
            what: format!("download of '{key}'"),
            detail: format!("received {got} bytes of {want}"),
        }),
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn write_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    while !data.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, data, offset)?;
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}
