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
//! in the budget, written at its offset, and is verified whole before the
//! rename (`Ranged`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::outcome::{finish, Slot};
use super::scheduler::Ctx;
use crate::atomic::{Mode, TempFile};
use crate::backend::object::read_at;
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
        (Some(size), Some(range)) if size > RANGED_MIN * range && ctx.ceiling() > 1 => Some(size),
        _ => None,
    };
    let result = match ranged {
        Some(size) => match Ranged::start(ctx, backend, object, path, force, size) {
            Ok(ranged) => return ranged.queue(ctx, &slot),
            Err(e) => Err(e),
        },
        None => whole(ctx, backend, &object, &path, force),
    };
    finish(ctx, &slot, result);
}

/// One GET, resumed where it broke, into a temporary file renamed on success.
fn whole(
    ctx: &Ctx<'_, '_, '_>,
    backend: &dyn Backend,
    object: &RemoteObject,
    path: &Path,
    force: bool,
) -> Result<u64> {
    // Created at the first answer, which says what mode the file gets.
    let mut temp: Option<TempFile> = None;
    let mut landing = Landing::new(&object.key);
    let what = format!("GET '{}'", object.key);
    ctx.request(&what, Some(object.size.unwrap_or(0)), |_| {
        let from = landing.written;
        let range = ByteRange {
            from,
            len: None,
            if_match: landing.etag.as_deref().filter(|_| from > 0),
        };
        let download = match (backend.get(object, range), &mut temp) {
            (Err(e), Some(temp)) if from > 0 && e.is_precondition_failed() => {
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
            (other, _) => other?,
        };
        let file = match &mut temp {
            Some(temp) => temp.file(),
            None => {
                let mode = Mode::for_pull(download.mode, path, force);
                temp.insert(TempFile::create(path, mode)?).file()
            }
        };
        landing.receive(file, download, object.size)
    })?;
    let Some(temp) = temp else {
        return Err(Error::Protocol(format!("no answer for '{}'", object.key)));
    };
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
    /// The first answer's version (`backend::object::version_of`).
    version: Option<String>,
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
            version: None,
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
        let other_version = self.answered
            && matches!((&self.version, &download.version), (Some(a), Some(b)) if a != b);
        if other_version && download.offset != 0 {
            // A store that ignores If-Match: the bytes so far are another
            // version's; ask for the whole of this one.
            log::debug(|| format!("'{}' changed during the download; starting over", self.key));
            self.restart(file)?;
            return Err(Error::Network {
                what: format!("download of '{}'", self.key),
                detail: "the object changed during the download; starting over".into(),
            });
        }
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
            self.version = download.version.clone();
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

/// A large object fetched as ranges, each its own request in the budget,
/// every one with `If-Match` on the ETag a HEAD stated first, and checked
/// as a whole before the rename: a composite checksum from each range's
/// digest (the ranges are cut at the recorded part size), a whole-object
/// SHA-256 by hashing the ranges in order — while a range streams when it
/// is next in line, else from the file as soon as the ranges before it are
/// done.
struct Ranged<'env> {
    backend: &'env dyn Backend,
    object: RemoteObject,
    path: PathBuf,
    force: bool,
    size: u64,
    range: u64,
    /// The HEAD's ETag (sent as `If-Match`) and version (checked on every
    /// range's answer).
    etag: Option<String>,
    version: Option<String>,
    expected: Option<Expected>,
    temp: Mutex<Option<TempFile>>,
    /// A second handle on the temporary file, written at offsets.
    file: File,
    /// Ranges written.
    done: Vec<AtomicBool>,
    /// For a whole-object SHA-256: the next range to hash and the hash so far.
    ordered: Mutex<(usize, Sha256)>,
    /// For a composite checksum: each range's (part's) digest.
    parts: Mutex<Vec<[u8; 32]>>,
    left: AtomicUsize,
    failure: Mutex<Option<Error>>,
}

impl<'env> Ranged<'env> {
    fn start(
        ctx: &Ctx<'_, '_, 'env>,
        backend: &'env dyn Backend,
        object: RemoteObject,
        path: PathBuf,
        force: bool,
        size: u64,
    ) -> Result<Arc<Ranged<'env>>> {
        let what = format!("HEAD '{}'", object.key);
        let stated = ctx.request(&what, None, |_| backend.stat(&object))?;
        let range = match &stated.sha256 {
            Some(Expected::Composite { part_size, .. }) => *part_size,
            _ => backend.range_size().unwrap_or(size),
        }
        .max(1);
        let count = size.div_ceil(range) as usize;
        let mode = Mode::for_pull(stated.mode, &path, force);
        let mut temp = TempFile::create(&path, mode)?;
        let write_error = |e| Error::local_io("write", &path, e);
        temp.file().set_len(size).map_err(write_error)?;
        let file = temp.file().try_clone().map_err(write_error)?;
        Ok(Arc::new(Ranged {
            backend,
            object,
            path,
            force,
            size,
            range,
            etag: stated.etag,
            version: stated.version,
            expected: stated.sha256,
            temp: Mutex::new(Some(temp)),
            file,
            done: (0..count).map(|_| AtomicBool::new(false)).collect(),
            ordered: Mutex::new((0, Sha256::new())),
            parts: Mutex::new(vec![[0; 32]; count]),
            left: AtomicUsize::new(count),
            failure: Mutex::new(None),
        }))
    }

    /// Queues every range ahead of new files.
    fn queue(self: Arc<Self>, ctx: &Ctx<'_, '_, 'env>, slot: &Arc<Slot>) {
        for index in 0..self.done.len() {
            let ranged = Arc::clone(&self);
            let slot = Arc::clone(slot);
            ctx.follow_up(Box::new(move |ctx| {
                if !ctx.stopping() && ranged.healthy() {
                    if let Err(e) = ranged.fetch_range(ctx, index) {
                        if let Ok(mut failure) = ranged.failure.lock() {
                            failure.get_or_insert(e);
                        }
                        ctx.stop();
                    }
                }
                ranged.release(ctx, &slot);
            }));
        }
    }

    fn healthy(&self) -> bool {
        self.failure.lock().map(|f| f.is_none()).unwrap_or(false)
    }

    fn span(&self, index: usize) -> (u64, u64) {
        let offset = index as u64 * self.range;
        (offset, self.range.min(self.size - offset))
    }

    /// One range into place, hashed as its check needs.
    fn fetch_range(&self, ctx: &Ctx<'_, '_, 'env>, index: usize) -> Result<()> {
        let (offset, len) = self.span(index);
        let key = &self.object.key;
        let composite = matches!(self.expected, Some(Expected::Composite { .. }));
        // Next in line for the whole-object hash, and nobody hashing: this
        // range hashes while it streams.
        let mut in_line = match (&self.expected, self.ordered.try_lock()) {
            (Some(Expected::Whole(_)), Ok(guard)) if guard.0 == index => Some(guard),
            _ => None,
        };
        let what = format!("GET '{key}' bytes {offset}-{}", offset + len - 1);
        let (whole, part) = ctx.request(&what, Some(len), |_| {
            let range = ByteRange {
                from: offset,
                len: Some(len),
                if_match: self.etag.as_deref(),
            };
            let download = self.backend.get(&self.object, range)?;
            if let (Some(want), Some(got)) = (&self.version, &download.version) {
                // A store that ignores If-Match still names the version.
                if want != got {
                    return Err(changed(key));
                }
            }
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
            // Fresh hashers per attempt: a retried range starts over.
            let mut whole = in_line.as_ref().map(|guard| guard.1.clone());
            let mut part = composite.then(Sha256::new);
            let mut at = offset;
            let mut body = download.body;
            let n = copy_body(&mut body, key, |chunk| {
                write_at(&self.file, chunk, at)?;
                at += chunk.len() as u64;
                if let Some(h) = &mut whole {
                    h.update(chunk);
                }
                if let Some(h) = &mut part {
                    h.update(chunk);
                }
                Ok(())
            })?;
            check_length(key, Some(len), n)?;
            Ok((whole, part))
        })?;
        if let (Some(guard), Some(hash)) = (&mut in_line, whole) {
            **guard = (index + 1, hash);
        }
        drop(in_line);
        if let (Some(hash), Ok(mut parts)) = (part, self.parts.lock()) {
            parts[index] = hash.finalize().into();
        }
        self.done[index].store(true, Ordering::SeqCst);
        if matches!(self.expected, Some(Expected::Whole(_))) {
            self.hash_in_order(false)?;
        }
        Ok(())
    }

    /// Hashes the ranges that are done and next in line, from the file.
    /// Without `wait`, leaves it to whoever holds the hash now (who checks
    /// again when done).
    fn hash_in_order(&self, wait: bool) -> Result<()> {
        let lost = || Error::Protocol("a range hash was lost".into());
        loop {
            let mut guard = match self.ordered.try_lock() {
                Ok(guard) => guard,
                Err(_) if wait => self.ordered.lock().map_err(|_| lost())?,
                Err(_) => return Ok(()),
            };
            while guard.0 < self.done.len() && self.done[guard.0].load(Ordering::SeqCst) {
                let (offset, len) = self.span(guard.0);
                hash_file_range(&self.file, offset, len, &mut guard.1)
                    .map_err(|e| Error::local_io("read", &self.path, e))?;
                guard.0 += 1;
            }
            let next = guard.0;
            drop(guard);
            // A range may have finished while this one held the hash.
            if next >= self.done.len() || !self.done[next].load(Ordering::SeqCst) {
                return Ok(());
            }
        }
    }

    /// Whether the bytes written are what the store stated.
    fn verify(&self) -> Result<()> {
        let lost = || Error::Protocol("a range hash was lost".into());
        let ranges = self.done.len();
        let Some(expected) = &self.expected else {
            log::debug(|| {
                format!(
                    "'{}': downloaded in {ranges} ranges; the store states no checksum for it, so only their lengths were checked",
                    self.object.key
                )
            });
            return Ok(());
        };
        let actual = match expected {
            Expected::Composite { .. } => {
                checksum::composite(&self.parts.lock().map_err(|_| lost())?)
            }
            Expected::Whole(_) => {
                self.hash_in_order(true)?;
                let guard = self.ordered.lock().map_err(|_| lost())?;
                checksum::base64(&guard.1.clone().finalize())
            }
        };
        if expected.matches(&actual) {
            log::debug(|| {
                format!(
                    "'{}': downloaded in {ranges} ranges; SHA-256 verified",
                    self.object.key
                )
            });
            return Ok(());
        }
        Err(Error::Integrity {
            what: format!("download of '{}'", self.object.key),
            detail: format!("SHA-256 {actual}, the store says {}", expected.value()),
        })
    }

    /// Counts one range done; the last one verifies the file and renames it
    /// into place (or drops it), and fills the slot.
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
            (Some(temp), None) => self.verify().and_then(|()| {
                temp.commit(
                    &self.path,
                    self.force,
                    &self.path.display().to_string(),
                    Side::Local,
                )
                .map(|()| self.size)
            }),
        };
        finish(ctx, slot, result);
    }
}

/// Adds `len` bytes of `file` from `offset` to `hasher`.
fn hash_file_range(file: &File, offset: u64, len: u64, hasher: &mut Sha256) -> io::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    let mut done = 0;
    while done < len {
        let want = buf
            .len()
            .min(usize::try_from(len - done).unwrap_or(usize::MAX));
        let n = read_at(file, &mut buf[..want], offset + done)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}

/// The object was replaced while it was being fetched in ranges.
fn changed(key: &str) -> Error {
    Error::remote(
        format!("GET '{key}'"),
        412,
        "the object changed since the download started; pull it again",
    )
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
