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
//!
//! A download with a checksum for the whole file keeps a `journal` of the
//! spans written, so that a run killed part way is continued by the next:
//! a dead run's temporary file whose journal names the same object (same
//! key, ETag and size) is adopted, and only the spans missing are fetched,
//! with `If-Match`. An object that changed, or bytes that fail the final
//! check, start over.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::journal::{self, Header, Journal, Spans, RECORD_EVERY};
use super::outcome::{finish, Slot};
use super::scheduler::Ctx;
use crate::atomic::{self, Leftover, Mode, TempFile};
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
    let leftover = atomic::take_leftover(&path);
    let ranged = match (object.size, backend.range_size()) {
        (Some(size), Some(range)) if size > RANGED_MIN * range && ctx.ceiling() > 1 => Some(size),
        _ => None,
    };
    let result = match ranged {
        Some(size) => match Ranged::start(ctx, backend, object, path, force, size, leftover) {
            Ok(ranged) => return ranged.queue(ctx, &slot),
            Err(e) => Err(e),
        },
        None => whole(ctx, backend, &object, &path, force, leftover),
    };
    finish(ctx, &slot, result);
}

/// One GET, resumed where it broke, into a temporary file renamed on
/// success; or the rest of what a dead run left.
fn whole(
    ctx: &Ctx<'_, '_, '_>,
    backend: &dyn Backend,
    object: &RemoteObject,
    path: &Path,
    force: bool,
    leftover: Option<Leftover>,
) -> Result<u64> {
    let mut landing = Landing::new(&object.key);
    // Adopted, or created at the first answer, which says what mode the
    // file gets.
    let mut temp = leftover.and_then(|l| landing.adopt(l, object.size, path));
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
                landing.restart(temp)?;
                backend.get(object, ByteRange::default())?
            }
            (other, _) => other?,
        };
        let temp = match &mut temp {
            Some(temp) => temp,
            None => {
                let mode = Mode::for_pull(download.mode, path, force);
                temp.insert(TempFile::create(path, mode)?)
            }
        };
        landing.receive(temp, download, object.size)
    })?;
    let Some(temp) = temp else {
        return Err(Error::Protocol(format!("no answer for '{}'", object.key)));
    };
    let (written, adopted) = (landing.written, landing.adopted);
    match landing.verify() {
        Err(e) if adopted => {
            log::debug(|| format!("{e}: the bytes a dead run left were bad; starting over"));
            drop(temp);
            return whole(ctx, backend, object, path, force, None);
        }
        other => other?,
    }
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
    journal: Option<Journal>,
    /// Bytes up to here are in the journal.
    recorded: u64,
    /// Whether the bytes from the start are a dead run's.
    adopted: bool,
}

enum Check {
    Sha256(Expected, StreamHasher),
    Md5(String, md5::Context),
}

impl Check {
    fn new(stated: &journal::Check) -> Check {
        match stated {
            journal::Check::Sha256(e) => Check::Sha256(e.clone(), StreamHasher::new(e)),
            journal::Check::Md5(m) => Check::Md5(m.clone(), md5::Context::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Check::Sha256(_, h) => h.update(bytes),
            Check::Md5(_, h) => h.consume(bytes),
        }
    }
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
            journal: None,
            recorded: 0,
            adopted: false,
        }
    }

    /// Takes over what a dead run left when its journal names this key
    /// (and the size listed): the bytes from the start it holds are hashed
    /// from the file and the rest is asked for with `If-Match` on the
    /// journal's ETag, which the store checks.
    fn adopt(&mut self, leftover: Leftover, size: Option<u64>, dest: &Path) -> Option<TempFile> {
        let (header, spans) = journal::read(leftover.journal()?)?;
        if header.key != self.key || size.is_some_and(|s| s != header.size) {
            return None;
        }
        let mut temp = TempFile::adopt(leftover, dest)?;
        // Asking from the very end would be refused: the last byte comes again.
        let from = journal::prefix(&spans, header.size).min(header.size.saturating_sub(1));
        let mut check = Check::new(&header.check);
        read_file_range(temp.file(), 0, from, |bytes| check.update(bytes)).ok()?;
        let file = temp.file();
        file.set_len(from).ok()?;
        file.seek(SeekFrom::Start(from)).ok()?;
        // Rewritten: it now holds exactly the bytes kept.
        let journal = Journal::create(&temp.journal(), &header).ok()??;
        journal.record(0, from);
        progress::add(from);
        *self = Landing {
            key: self.key,
            written: from,
            etag: Some(header.etag),
            version: header.version,
            check: Some(check),
            answered: true,
            journal: Some(journal),
            recorded: from,
            adopted: true,
        };
        log::debug(|| format!("'{}': continuing from byte {from}", self.key));
        Some(temp)
    }

    fn restart(&mut self, temp: &mut TempFile) -> Result<()> {
        let file = temp.file();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| Error::local_io("write", Path::new(self.key), e))?;
        if let Some(journal) = self.journal.take() {
            journal.discard();
        }
        *self = Landing::new(self.key);
        Ok(())
    }

    /// Writes one answer's body after what is already there.
    fn receive(
        &mut self,
        temp: &mut TempFile,
        download: Download<'_>,
        listed_size: Option<u64>,
    ) -> Result<()> {
        let other_version = self.answered
            && matches!((&self.version, &download.version), (Some(a), Some(b)) if a != b);
        if other_version && download.offset != 0 {
            // A store that ignores If-Match: the bytes so far are another
            // version's; ask for the whole of this one.
            log::debug(|| format!("'{}' changed during the download; starting over", self.key));
            self.restart(temp)?;
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
            self.restart(temp)?;
        }
        let expected_end = download.length.map(|n| download.offset + n).or(listed_size);
        if !self.answered {
            self.answered = true;
            self.etag = download.etag.clone();
            self.version = download.version.clone();
            let stated = match (download.sha256.clone(), download.md5.clone()) {
                (Some(expected), _) => Some(journal::Check::Sha256(expected)),
                (None, Some(md5)) => Some(journal::Check::Md5(md5)),
                _ => None,
            };
            self.check = stated.as_ref().map(Check::new);
            // Only a file the final check can verify is worth continuing,
            // and only one larger than a record.
            let size = expected_end.filter(|&size| size > RECORD_EVERY);
            if let (Some(check), Some(etag), Some(size)) = (stated, &self.etag, size) {
                let header = Header {
                    key: self.key.to_string(),
                    etag: etag.clone(),
                    version: self.version.clone(),
                    size,
                    check,
                };
                self.journal = Journal::create(&temp.journal(), &header).ok().flatten();
            }
        }
        let mut body = download.body;
        let file = temp.file();
        let (check, written) = (&mut self.check, &mut self.written);
        let (journal, recorded) = (self.journal.as_ref(), &mut self.recorded);
        // Bytes count as written as soon as they are: a body cut short
        // keeps what arrived for the next attempt.
        let copied = copy_body(&mut body, self.key, |chunk| {
            file.write_all(chunk)?;
            *written += chunk.len() as u64;
            if let Some(check) = check {
                check.update(chunk);
            }
            if *written - *recorded >= RECORD_EVERY {
                record(journal, recorded, *written);
            }
            Ok(())
        });
        record(journal, recorded, *written);
        copied?;
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
/// done. A file a dead run left, whose journal names the object the HEAD
/// states, is adopted: only its missing spans are fetched (cut at the range
/// boundaries), and the bytes already there are hashed from the file.
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
    /// Per range, the spans to fetch: the whole range, unless adopted.
    pending: Vec<Spans>,
    adopted: bool,
    journal: Option<Journal>,
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
        leftover: Option<Leftover>,
    ) -> Result<Arc<Ranged<'env>>> {
        let what = format!("HEAD '{}'", object.key);
        let stated = ctx.request(&what, None, |_| backend.stat(&object))?;
        let range = match &stated.sha256 {
            Some(Expected::Composite { part_size, .. }) => *part_size,
            _ => backend.range_size().unwrap_or(size),
        }
        .max(1);
        let count = size.div_ceil(range) as usize;
        // Only a file the final check can verify is worth continuing.
        let header = match (&stated.etag, &stated.sha256) {
            (Some(etag), Some(expected)) => Some(Header {
                key: object.key.clone(),
                etag: etag.clone(),
                version: stated.version.clone(),
                size,
                check: journal::Check::Sha256(expected.clone()),
            }),
            _ => None,
        };
        let adopted = leftover
            .zip(header.as_ref())
            .and_then(|(leftover, header)| adopt(leftover, header, &path));
        let (mut temp, journal, missing, adopted) = match adopted {
            Some((temp, journal, missing)) => (temp, Some(journal), missing, true),
            None => {
                let mode = Mode::for_pull(stated.mode, &path, force);
                let mut temp = TempFile::create(&path, mode)?;
                let journal = header
                    .and_then(|header| Journal::create(&temp.journal(), &header).ok().flatten());
                (temp, journal, vec![(0, size)], false)
            }
        };
        let write_error = |e| Error::local_io("write", &path, e);
        temp.file().set_len(size).map_err(write_error)?;
        let file = temp.file().try_clone().map_err(write_error)?;
        let pending = (0..count as u64)
            .map(|index| {
                let (from, to) = (index * range, size.min((index + 1) * range));
                missing
                    .iter()
                    .map(|&(a, b)| (a.max(from), b.min(to)))
                    .filter(|(a, b)| a < b)
                    .collect()
            })
            .collect();
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
            pending,
            adopted,
            journal,
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
        let composite = matches!(self.expected, Some(Expected::Composite { .. }));
        let lost = || Error::Protocol("a range hash was lost".into());
        let pending = &self.pending[index];
        if pending[..] != [(offset, offset + len)] {
            // Partly on disk already: fetch the rest, then hash from the file.
            for &(from, to) in pending {
                self.fetch_span(ctx, from, to - from, None, false)?;
            }
            if composite {
                let mut part = Sha256::new();
                read_file_range(&self.file, offset, len, |bytes| part.update(bytes))
                    .map_err(|e| Error::local_io("read", &self.path, e))?;
                self.parts.lock().map_err(|_| lost())?[index] = part.finalize().into();
            }
        } else {
            // Next in line for the whole-object hash, and nobody hashing:
            // this range hashes while it streams.
            let mut in_line = match (&self.expected, self.ordered.try_lock()) {
                (Some(Expected::Whole(_)), Ok(guard)) if guard.0 == index => Some(guard),
                _ => None,
            };
            let start = in_line.as_ref().map(|guard| &guard.1);
            let (whole, part) = self.fetch_span(ctx, offset, len, start, composite)?;
            if let (Some(guard), Some(hash)) = (&mut in_line, whole) {
                **guard = (index + 1, hash);
            }
            drop(in_line);
            if let (Some(hash), Ok(mut parts)) = (part, self.parts.lock()) {
                parts[index] = hash.finalize().into();
            }
        }
        self.done[index].store(true, Ordering::SeqCst);
        if matches!(self.expected, Some(Expected::Whole(_))) {
            self.hash_in_order(false)?;
        }
        Ok(())
    }

    /// Bytes `offset..offset + len` into place, journalled as they land;
    /// gives the whole-object hash continued from `whole` and, when asked
    /// for, the span's own.
    fn fetch_span(
        &self,
        ctx: &Ctx<'_, '_, 'env>,
        offset: u64,
        len: u64,
        whole: Option<&Sha256>,
        own: bool,
    ) -> Result<(Option<Sha256>, Option<Sha256>)> {
        let key = &self.object.key;
        let what = format!("GET '{key}' bytes {offset}-{}", offset + len - 1);
        ctx.request(&what, Some(len), |_| {
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
            let mut whole = whole.cloned();
            let mut part = own.then(Sha256::new);
            let (mut at, mut recorded) = (offset, offset);
            let journal = self.journal.as_ref();
            let mut body = download.body;
            let copied = copy_body(&mut body, key, |chunk| {
                write_at(&self.file, chunk, at)?;
                at += chunk.len() as u64;
                if let Some(h) = &mut whole {
                    h.update(chunk);
                }
                if let Some(h) = &mut part {
                    h.update(chunk);
                }
                if at - recorded >= RECORD_EVERY {
                    record(journal, &mut recorded, at);
                }
                Ok(())
            });
            record(journal, &mut recorded, at);
            check_length(key, Some(len), copied?)?;
            Ok((whole, part))
        })
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
                let hasher = &mut guard.1;
                read_file_range(&self.file, offset, len, |bytes| hasher.update(bytes))
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
    fn release(&self, ctx: &Ctx<'_, '_, 'env>, slot: &Arc<Slot>) {
        if self.left.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let temp = self.temp.lock().ok().and_then(|mut t| t.take());
        let failure = self.failure.lock().ok().and_then(|mut f| f.take());
        let result = match (temp, failure) {
            (_, Some(e)) => Err(e),
            (None, None) => return,
            (Some(_), None) if ctx.stopping() => return,
            (Some(temp), None) => match self.verify() {
                Err(e) if self.adopted => {
                    log::debug(|| {
                        format!("{e}: the bytes a dead run left were bad; starting over")
                    });
                    drop(temp);
                    let object = self.object.clone();
                    let (path, slot) = (self.path.clone(), Arc::clone(slot));
                    return fetch(ctx, self.backend, object, path, self.force, slot);
                }
                verified => verified.and_then(|()| {
                    let display = self.path.display().to_string();
                    temp.commit(&self.path, self.force, &display, Side::Local)
                        .map(|()| self.size)
                }),
            },
        };
        finish(ctx, slot, result);
    }
}

/// Records bytes `*recorded..to` as written, in the journal if one is kept.
fn record(journal: Option<&Journal>, recorded: &mut u64, to: u64) {
    if let Some(journal) = journal {
        journal.record(*recorded, to);
    }
    *recorded = to;
}

/// Hands `len` bytes of `file` from `offset` to `each`, a buffer at a time.
fn read_file_range(
    file: &File,
    offset: u64,
    len: u64,
    mut each: impl FnMut(&[u8]),
) -> io::Result<()> {
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
        each(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}

/// Takes over what a dead run left when its journal names the object
/// `header` describes and the same check: the file, its journal, and the
/// spans still missing.
fn adopt(leftover: Leftover, header: &Header, dest: &Path) -> Option<(TempFile, Journal, Spans)> {
    let (found, spans) = journal::read(leftover.journal()?)?;
    let version = header.version.as_deref();
    if !found.matches(&header.key, &header.etag, version, Some(header.size))
        || found.check != header.check
    {
        return None;
    }
    let mut temp = TempFile::adopt(leftover, dest)?;
    let journal = Journal::open(&temp.journal()).ok()?;
    let missing = journal::missing(&spans, header.size);
    let have = header.size - missing.iter().map(|(a, b)| b - a).sum::<u64>();
    progress::add(have);
    log::debug(|| format!("'{}': {have} bytes already here", header.key));
    Some((temp, journal, missing))
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
