//! Downloads into their temporary files, checked on the way in.
//!
//! Every backend's GET arrives here as a `Download`: a reader plus what the
//! store stated. One set of adapters counts the bytes, hashes them the way
//! the stated checksum was computed (SHA-256, S3's composite of parts, the
//! storage's MD5), never writes more than a stated length, checks the
//! length and verifies before the file is renamed into place. A
//! single-stream download that breaks part way goes on from the bytes
//! already written (`Range: bytes=N-` with `If-Match`); a store that
//! ignores the range, or an object that changed, starts over. A large
//! object comes down as parallel ranges, each a request of its own in the
//! budget, written at its offset, and is verified whole before the rename
//! (`Ranged`).
//!
//! A download that could be verified keeps a `journal` of the spans
//! written, so that a run killed part way is continued by the next: what a
//! dead run left for the same object is adopted (`resume`), only the spans
//! missing are fetched, with `If-Match`, and the whole file is verified
//! against what the store states in this run. Adopted bytes that fail it
//! are thrown away and the object fetched whole.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::journal::{self, Header, Journal, Spans, RECORD_EVERY};
use super::outcome::{absent, finish, Slot};
use super::resume::{self, Adopted, Resume};
use super::scheduler::Ctx;
use crate::atomic::{Mode, TempFile};
use crate::backend::object::read_at;
use crate::backend::{Backend, ByteRange, Download, RemoteObject, Stated};
use crate::checksum::{Check, Digester, StreamHasher};
use crate::error::{Error, Result, Side};
use crate::{interrupt, log, progress};

/// Objects larger than this many ranges come down in parallel ranges.
const RANGED_MIN: u64 = 4;
/// The most ranges one object is fetched in (S3's most parts): the plan's
/// memory stays small whatever size a listing states.
const MAX_RANGES: u64 = 10_000;

/// What every download of one pull shares.
#[derive(Clone, Copy)]
pub struct Puller<'env> {
    pub backend: &'env dyn Backend,
    pub resume: &'env Resume,
    pub force: bool,
}

/// Fetches `object` to `path` and fills `slot` with the bytes written. A
/// large object is split into ranges that finish on other workers.
pub fn fetch<'env>(
    ctx: &Ctx<'_, '_, 'env>,
    pull: Puller<'env>,
    object: RemoteObject,
    path: PathBuf,
    slot: Arc<Slot>,
) {
    fetch_checked(ctx, pull, object, path, slot, false);
}

/// `fetch`; with `etag_probe`, a download whose only check is its ETag is
/// checked against it (after an adopted file failed that check), to learn
/// whether this store's ETags are MD5s at all.
fn fetch_checked<'env>(
    ctx: &Ctx<'_, '_, 'env>,
    pull: Puller<'env>,
    object: RemoteObject,
    path: PathBuf,
    slot: Arc<Slot>,
    etag_probe: bool,
) {
    if ctx.stopping() {
        return;
    }
    let ranged = match (object.size, pull.backend.range_size()) {
        (Some(size), Some(range)) if size > RANGED_MIN * range && ctx.ceiling() > 1 => Some(size),
        _ => None,
    };
    let result = match ranged {
        Some(size) => match Ranged::start(ctx, pull, object, path, size, etag_probe) {
            Ok(ranged) => return ranged.queue(ctx, &slot),
            Err(e) => Err(e),
        },
        None => whole(ctx, pull, &object, &path, etag_probe),
    };
    match result {
        Err(Error::Pending(key)) => absent(&slot, &key),
        result => finish(ctx, &slot, result),
    }
}

/// How a finished download's check came out.
enum Verdict {
    Verified,
    /// Nothing stated could check it: its length was checked.
    Unchecked,
    Failed {
        error: Error,
        on_etag: bool,
    },
}

/// The verdict of `check` on bytes whose digests are `digests`.
fn judge(key: &str, check: Option<&Check>, digests: &[Vec<u8>]) -> Verdict {
    let Some(check) = check else {
        return Verdict::Unchecked;
    };
    match check.verify(digests) {
        Ok(()) => Verdict::Verified,
        Err(actual) => Verdict::Failed {
            error: Error::Integrity {
                what: format!("download of '{key}'"),
                detail: format!(
                    "{} {actual}, the store says {}",
                    check.name(),
                    check.value()
                ),
            },
            on_etag: check.rests_on_etag(),
        },
    }
}

/// What to do after a verdict (its caller said with -v how it was
/// checked): commit (`Ok(true)`), fetch again whole
/// (`Ok(false)`, with an ETag probe when an ETag check failed), or fail.
/// Adopted bytes that fail are never blamed on the store: they are
/// fetched again. A whole download that fails an ETag check is accepted on
/// its length: the store's ETags are not MD5s. Only a cryptographic
/// checksum's mismatch is an integrity error.
fn settle(pull: Puller<'_>, key: &str, verdict: Verdict, adopted: bool) -> Result<bool> {
    match verdict {
        Verdict::Verified | Verdict::Unchecked => Ok(true),
        Verdict::Failed { error, .. } if adopted => {
            log::debug(|| format!("{error}: the bytes a dead run left were bad; starting over"));
            Ok(false)
        }
        Verdict::Failed { on_etag: true, .. } => {
            pull.resume.distrust_etags(key);
            Ok(true)
        }
        Verdict::Failed { error, .. } => Err(error),
    }
}

/// One GET, resumed where it broke, into a temporary file renamed on
/// success; or the rest of what a dead run left.
fn whole(
    ctx: &Ctx<'_, '_, '_>,
    pull: Puller<'_>,
    object: &RemoteObject,
    path: &Path,
    etag_probe: bool,
) -> Result<u64> {
    let mut landing = Landing::new(pull, &object.key, path, etag_probe);
    let stated = resume::Object {
        key: &object.key,
        size: object.size,
        etag: object.etag.as_deref(),
        version: None,
    };
    let adopted = pull.resume.adopt(path, stated);
    // Adopted, or created at the first answer.
    let mut temp = adopted.and_then(|a| landing.adopt(a));
    let what = format!("GET '{}'", object.key);
    ctx.request(&what, Some(object.size.unwrap_or(0)), |_| {
        let from = landing.written;
        let range = ByteRange {
            from,
            len: None,
            if_match: landing.etag.as_deref().filter(|_| from > 0),
        };
        let mut download = match (pull.backend.get(object, range), &mut temp) {
            (Err(e), Some(temp)) if from > 0 && e.is_precondition_failed() => {
                // The object changed since the first bytes: start over.
                log::debug(|| {
                    format!(
                        "'{}' changed during the download; starting over",
                        object.key
                    )
                });
                landing.restart(temp)?;
                pull.backend.get(object, ByteRange::default())?
            }
            (other, _) => other?,
        };
        if download.pending {
            return Err(Error::Pending(object.key.clone()));
        }
        if let Some(temp) = temp.as_mut().filter(|_| landing.unhashed > 0) {
            // A dead run's bytes: this answer says what they must hash to.
            if !landing.check_adopted(temp, &download)? {
                landing.restart(temp)?;
                download = pull.backend.get(object, ByteRange::default())?;
            }
        }
        let temp = match &mut temp {
            Some(temp) => temp,
            None => temp.insert(TempFile::create(path)?),
        };
        landing.receive(temp, download, object.size)
    })?;
    let Some(temp) = temp else {
        return Err(Error::Protocol(format!("no answer for '{}'", object.key)));
    };
    let (written, adopted, mode) = (landing.written, landing.adopted, landing.mode);
    let (verdict, on_etag) = landing.verdict();
    if !settle(pull, &object.key, verdict, adopted)? {
        drop(temp);
        return whole(ctx, pull, object, path, on_etag);
    }
    let display = path.display().to_string();
    let mode = mode.unwrap_or(Mode::Default);
    temp.commit(path, mode, pull.force, &display, Side::Local)?;
    Ok(written)
}

/// The state of one single-stream download across its attempts.
struct Landing<'k, 'env> {
    pull: Puller<'env>,
    key: &'k str,
    path: &'k Path,
    written: u64,
    /// The ETag of the first answer (or the adopted journal's), for
    /// `If-Match` on resumes.
    etag: Option<String>,
    /// The first answer's version (`backend::object::version_of`).
    version: Option<String>,
    /// Set by the first answer: what the bytes must hash to.
    check: Option<(Check, StreamHasher)>,
    /// Set by the first answer: the mode the file gets.
    mode: Option<Mode>,
    answered: bool,
    journal: Option<Journal>,
    /// Bytes up to here are in the journal.
    recorded: u64,
    /// Whether the bytes from the start are a dead run's.
    adopted: bool,
    /// A dead run's bytes not hashed yet: the answer says how.
    unhashed: u64,
    /// The object's size, as the adopted journal names it.
    adopted_size: Option<u64>,
    /// Whether an ETag alone may check a fresh download (`fetch_checked`).
    etag_probe: bool,
}

impl<'k, 'env> Landing<'k, 'env> {
    fn new(pull: Puller<'env>, key: &'k str, path: &'k Path, etag_probe: bool) -> Self {
        Landing {
            pull,
            key,
            path,
            written: 0,
            etag: None,
            version: None,
            check: None,
            mode: None,
            answered: false,
            journal: None,
            recorded: 0,
            adopted: false,
            unhashed: 0,
            adopted_size: None,
            etag_probe,
        }
    }

    /// Takes over what a dead run left: the bytes from the start that its
    /// journal records are kept, the rest is asked for with `If-Match` on
    /// its ETag, which the store checks; the answer says what the kept
    /// bytes must hash to (`check_adopted`).
    fn adopt(&mut self, adopted: Adopted) -> Option<TempFile> {
        let Adopted {
            mut temp,
            journal,
            header,
            spans,
        } = adopted;
        // Asking from the very end would be refused: the last byte comes again.
        let from = journal::prefix(&spans, header.size).min(header.size.saturating_sub(1));
        let file = temp.file();
        file.set_len(from).ok()?;
        file.seek(SeekFrom::Start(from)).ok()?;
        journal.record(0, from);
        progress::add(from);
        self.written = from;
        self.recorded = from;
        self.unhashed = from;
        self.etag = Some(header.etag);
        self.version = header.version;
        self.answered = true;
        self.journal = Some(journal);
        self.adopted = true;
        self.adopted_size = Some(header.size);
        log::debug(|| format!("'{}': continuing from byte {from}", self.key));
        Some(temp)
    }

    /// Hashes the adopted bytes the way `download`'s answer says the
    /// object's bytes hash; false when it states nothing that may vouch for
    /// them (then they are thrown away).
    fn check_adopted(&mut self, temp: &mut TempFile, download: &Download<'_>) -> Result<bool> {
        let stated = resume::Stated {
            size: self.adopted_size,
            sha256: download.sha256.as_ref(),
            md5: download.md5.as_deref(),
            etag_md5: download.etag_md5.as_deref(),
            part_size: download.part_size,
        };
        let Some(check) = self.pull.resume.vouching(stated) else {
            log::debug(|| {
                format!(
                    "'{}': the store states no hash that could vouch for the bytes a dead run left; fetching it whole",
                    self.key
                )
            });
            return Ok(false);
        };
        let mut hasher = StreamHasher::new(&check);
        read_file_range(temp.file(), 0, self.unhashed, |bytes| hasher.update(bytes))
            .map_err(|e| Error::local_io("read", self.path, e))?;
        self.check = Some((check, hasher));
        self.unhashed = 0;
        Ok(true)
    }

    fn restart(&mut self, temp: &mut TempFile) -> Result<()> {
        let file = temp.file();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| Error::local_io("write", self.path, e))?;
        if let Some(journal) = self.journal.take() {
            journal.discard();
        }
        *self = Landing::new(self.pull, self.key, self.path, self.etag_probe);
        Ok(())
    }

    /// The first answer of a fresh download: what the bytes must hash to,
    /// the mode, and a journal when a later run could verify what this one
    /// leaves.
    fn first_answer(&mut self, temp: &mut TempFile, download: &Download<'_>, size: Option<u64>) {
        self.answered = true;
        self.etag = download.etag.clone();
        self.version = download.version.clone();
        let stated = resume::Stated {
            size,
            sha256: download.sha256.as_ref(),
            md5: download.md5.as_deref(),
            etag_md5: download.etag_md5.as_deref(),
            part_size: download.part_size,
        };
        let could_vouch = self.pull.resume.vouching(stated);
        let check = could_vouch
            .clone()
            .filter(|c| !c.rests_on_etag() || self.etag_probe);
        self.check = check.map(|c| {
            let hasher = StreamHasher::new(&c);
            (c, hasher)
        });
        // Only a file a later run could verify is worth continuing, and
        // only one larger than a record.
        let size = size.filter(|&size| size > RECORD_EVERY);
        if let (Some(_), Some(etag), Some(size)) = (could_vouch, &self.etag, size) {
            let header = Header {
                key: self.key.to_string(),
                etag: etag.clone(),
                version: self.version.clone(),
                size,
            };
            self.journal = Journal::create(&temp.journal(), &header);
        }
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
        // Never more than any stated length: the listing's, the answer's.
        let stated_end = download.length.map(|n| download.offset + n);
        let end = [stated_end, listed_size, self.adopted_size]
            .into_iter()
            .flatten()
            .min();
        if !self.answered {
            self.first_answer(temp, &download, end);
        }
        if self.mode.is_none() {
            self.mode = Some(Mode::for_pull(download.mode, self.path, self.pull.force));
        }
        let mut body = download.body;
        let file = temp.file();
        let (check, written) = (&mut self.check, &mut self.written);
        let (journal, recorded) = (self.journal.as_ref(), &mut self.recorded);
        let room = end.map(|end| end.saturating_sub(*written));
        // Bytes count as written as soon as they are: a body cut short
        // keeps what arrived for the next attempt.
        let copied = copy_body(&mut body, self.key, room, |chunk| {
            file.write_all(chunk)?;
            *written += chunk.len() as u64;
            if let Some((_, hasher)) = check {
                hasher.update(chunk);
            }
            if *written - *recorded >= RECORD_EVERY {
                record(journal, recorded, *written);
            }
            Ok(())
        });
        record(journal, recorded, *written);
        copied?;
        check_length(self.key, end, self.written)
    }

    /// What the check made of the bytes, and whether it rested on an ETag.
    fn verdict(self) -> (Verdict, bool) {
        let Some((check, hasher)) = self.check else {
            log::debug(|| {
                format!(
                    "'{}': the store states no checksum for it; checked its length only",
                    self.key
                )
            });
            return (Verdict::Unchecked, false);
        };
        let on_etag = check.rests_on_etag();
        (judge(self.key, Some(&check), &hasher.finish()), on_etag)
    }
}

/// A large object fetched as ranges, each its own request in the budget,
/// every one with `If-Match` on the ETag a HEAD stated first, and checked
/// as a whole before the rename: a value of parts (S3's composite, a
/// multipart ETag) from each range's digest (the ranges are cut at the
/// recorded part size), a value of the whole by hashing the ranges in
/// order — while a range streams when it is next in line, else from the
/// file as soon as the ranges before it are done. A file a dead run left,
/// whose journal names the object the HEAD states, is adopted when the
/// HEAD states a hash that may vouch for it: only its missing spans are
/// fetched (cut at the range boundaries), and the bytes already there are
/// hashed from the file.
struct Ranged<'env> {
    pull: Puller<'env>,
    object: RemoteObject,
    path: PathBuf,
    size: u64,
    range: u64,
    /// The HEAD's ETag (sent as `If-Match`) and version (checked on every
    /// range's answer).
    etag: Option<String>,
    version: Option<String>,
    check: Option<Check>,
    mode: Mode,
    temp: Mutex<Option<TempFile>>,
    /// A second handle on the temporary file, written at offsets.
    file: File,
    /// Ranges written.
    done: Vec<AtomicBool>,
    /// Per range, the spans to fetch: the whole range, unless adopted.
    pending: Vec<Spans>,
    adopted: bool,
    journal: Option<Journal>,
    /// For a value of the whole: the next range to hash and the hash so far.
    ordered: Mutex<(usize, Option<Digester>)>,
    /// For a value of parts: each range's (part's) digest.
    parts: Mutex<Vec<Vec<u8>>>,
    left: AtomicUsize,
    failure: Mutex<Option<Error>>,
    etag_probe: bool,
}

impl<'env> Ranged<'env> {
    fn start(
        ctx: &Ctx<'_, '_, 'env>,
        pull: Puller<'env>,
        object: RemoteObject,
        path: PathBuf,
        size: u64,
        etag_probe: bool,
    ) -> Result<Arc<Ranged<'env>>> {
        let what = format!("HEAD '{}'", object.key);
        let stated = ctx.request(&what, None, |_| pull.backend.stat(&object))?;
        if stated.pending {
            return Err(Error::Pending(object.key));
        }
        let could_vouch = pull.resume.vouching(vouching_facts(&stated, size));
        let adopted = match (&could_vouch, &stated.etag) {
            (Some(_), Some(etag)) => {
                let found = resume::Object {
                    key: &object.key,
                    size: Some(size),
                    etag: Some(etag),
                    version: stated.version.as_deref(),
                };
                pull.resume.adopt(&path, found)
            }
            _ => None,
        };
        // An ETag checks only bytes that need it: adopted ones, or a probe.
        let check = could_vouch
            .clone()
            .filter(|c| !c.rests_on_etag() || adopted.is_some() || etag_probe);
        // At most 10,000 ranges, whatever size the listing states.
        let range = check
            .as_ref()
            .and_then(Check::part_size)
            .unwrap_or_else(|| pull.backend.range_size().unwrap_or(size))
            .max(size.div_ceil(MAX_RANGES))
            .max(1);
        let count = usize::try_from(size.div_ceil(range))
            .map_err(|_| Error::Protocol(format!("'{}' is too large to fetch", object.key)))?;
        let (mut temp, journal, missing, adopted) = match adopted {
            Some(adopted) => {
                let missing = journal::missing(&adopted.spans, size);
                let have = size - missing.iter().map(|(a, b)| b - a).sum::<u64>();
                progress::add(have);
                log::debug(|| format!("'{}': {have} bytes already here", object.key));
                (adopted.temp, Some(adopted.journal), missing, true)
            }
            None => {
                let mut temp = TempFile::create(&path)?;
                let header = stated.etag.clone().filter(|_| could_vouch.is_some());
                let journal = header.and_then(|etag| {
                    let header = Header {
                        key: object.key.clone(),
                        etag,
                        version: stated.version.clone(),
                        size,
                    };
                    Journal::create(&temp.journal(), &header)
                });
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
        let whole_hash = check
            .as_ref()
            .filter(|c| c.part_size().is_none())
            .map(Check::digester);
        Ok(Arc::new(Ranged {
            pull,
            mode: Mode::for_pull(stated.mode, &path, pull.force),
            object,
            path,
            size,
            range,
            etag: stated.etag,
            version: stated.version,
            check,
            temp: Mutex::new(Some(temp)),
            file,
            done: (0..count).map(|_| AtomicBool::new(false)).collect(),
            pending,
            adopted,
            journal,
            ordered: Mutex::new((0, whole_hash)),
            parts: Mutex::new(vec![Vec::new(); count]),
            left: AtomicUsize::new(count),
            failure: Mutex::new(None),
            etag_probe,
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

    /// Whether the check is a value of parts (one digest per range).
    fn by_parts(&self) -> bool {
        self.check.as_ref().is_some_and(|c| c.part_size().is_some())
    }

    /// One range into place, hashed as its check needs.
    fn fetch_range(&self, ctx: &Ctx<'_, '_, 'env>, index: usize) -> Result<()> {
        let (offset, len) = self.span(index);
        let lost = || Error::Protocol("a range hash was lost".into());
        let own = self.check.as_ref().filter(|_| self.by_parts());
        let pending = &self.pending[index];
        if pending[..] != [(offset, offset + len)] {
            // Partly on disk already: fetch the rest, then hash from the file.
            for &(from, to) in pending {
                self.fetch_span(ctx, from, to - from, None, None)?;
            }
            if let Some(check) = own {
                let mut part = check.digester();
                read_file_range(&self.file, offset, len, |bytes| part.update(bytes))
                    .map_err(|e| Error::local_io("read", &self.path, e))?;
                self.parts.lock().map_err(|_| lost())?[index] = part.finish();
            }
        } else {
            // Next in line for the whole-object hash, and nobody hashing:
            // this range hashes while it streams.
            let mut in_line = match self.ordered.try_lock() {
                Ok(guard) if guard.0 == index && guard.1.is_some() => Some(guard),
                _ => None,
            };
            let start = in_line.as_ref().and_then(|guard| guard.1.as_ref());
            let (whole, part) = self.fetch_span(ctx, offset, len, start, own)?;
            if let (Some(guard), Some(hash)) = (&mut in_line, whole) {
                **guard = (index + 1, Some(hash));
            }
            drop(in_line);
            if let (Some(hash), Ok(mut parts)) = (part, self.parts.lock()) {
                parts[index] = hash.finish();
            }
        }
        self.done[index].store(true, Ordering::SeqCst);
        self.hash_in_order(false)
    }

    /// Bytes `offset..offset + len` into place, journalled as they land;
    /// gives the whole-object hash continued from `whole` and, with `own`,
    /// the span's own digest.
    fn fetch_span(
        &self,
        ctx: &Ctx<'_, '_, 'env>,
        offset: u64,
        len: u64,
        whole: Option<&Digester>,
        own: Option<&Check>,
    ) -> Result<(Option<Digester>, Option<Digester>)> {
        let key = &self.object.key;
        let what = format!("GET '{key}' bytes {offset}-{}", offset + len - 1);
        ctx.request(&what, Some(len), |_| {
            let range = ByteRange {
                from: offset,
                len: Some(len),
                if_match: self.etag.as_deref(),
            };
            let download = self.pull.backend.get(&self.object, range)?;
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
            let mut part = own.map(Check::digester);
            let (mut at, mut recorded) = (offset, offset);
            let journal = self.journal.as_ref();
            let mut body = download.body;
            let copied = copy_body(&mut body, key, Some(len), |chunk| {
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
            let (next, hasher) = &mut *guard;
            let Some(hasher) = hasher else {
                return Ok(());
            };
            while *next < self.done.len() && self.done[*next].load(Ordering::SeqCst) {
                let (offset, len) = self.span(*next);
                read_file_range(&self.file, offset, len, |bytes| hasher.update(bytes))
                    .map_err(|e| Error::local_io("read", &self.path, e))?;
                *next += 1;
            }
            let next = *next;
            drop(guard);
            // A range may have finished while this one held the hash.
            if next >= self.done.len() || !self.done[next].load(Ordering::SeqCst) {
                return Ok(());
            }
        }
    }

    /// What the check makes of the bytes written.
    fn verdict(&self) -> Result<Verdict> {
        let lost = || Error::Protocol("a range hash was lost".into());
        let ranges = self.done.len();
        let Some(check) = &self.check else {
            log::debug(|| {
                format!(
                    "'{}': downloaded in {ranges} ranges; the store states no checksum for it, so only their lengths were checked",
                    self.object.key
                )
            });
            return Ok(Verdict::Unchecked);
        };
        let digests = if self.by_parts() {
            self.parts.lock().map_err(|_| lost())?.clone()
        } else {
            self.hash_in_order(true)?;
            let mut guard = self.ordered.lock().map_err(|_| lost())?;
            vec![guard.1.take().ok_or_else(lost)?.finish()]
        };
        let verdict = judge(&self.object.key, Some(check), &digests);
        if matches!(verdict, Verdict::Verified) {
            log::debug(|| {
                format!(
                    "'{}': downloaded in {ranges} ranges; {} verified",
                    self.object.key,
                    check.name()
                )
            });
        }
        Ok(verdict)
    }

    /// Counts one range done; the last one verifies the file and renames it
    /// into place (or drops it), and fills the slot.
    fn release(&self, ctx: &Ctx<'_, '_, 'env>, slot: &Arc<Slot>) {
        if self.left.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let temp = self.temp.lock().ok().and_then(|mut t| t.take());
        let failure = self.failure.lock().ok().and_then(|mut f| f.take());
        let temp = match (temp, failure) {
            (_, Some(e)) => return finish(ctx, slot, Err(e)),
            (None, None) => return,
            (Some(_), None) if ctx.stopping() => return,
            (Some(temp), None) => temp,
        };
        let key = &self.object.key;
        let settled = self.verdict().and_then(|verdict| {
            let on_etag = matches!(verdict, Verdict::Failed { on_etag: true, .. });
            let keep = settle(self.pull, key, verdict, self.adopted)?;
            Ok((keep, on_etag))
        });
        let result = match settled {
            Ok((false, on_etag)) => {
                drop(temp);
                let (object, path) = (self.object.clone(), self.path.clone());
                let probe = on_etag || self.etag_probe;
                return fetch_checked(ctx, self.pull, object, path, Arc::clone(slot), probe);
            }
            Ok((true, _)) => {
                let display = self.path.display().to_string();
                temp.commit(
                    &self.path,
                    self.mode,
                    self.pull.force,
                    &display,
                    Side::Local,
                )
                .map(|()| self.size)
            }
            Err(e) => Err(e),
        };
        finish(ctx, slot, result);
    }
}

/// What a HEAD states, as far as it can vouch for an object's bytes.
fn vouching_facts(stated: &Stated, size: u64) -> resume::Stated<'_> {
    resume::Stated {
        size: Some(size),
        sha256: stated.sha256.as_ref(),
        md5: None,
        etag_md5: stated.etag_md5.as_deref(),
        part_size: stated.part_size,
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

/// The object was replaced while it was being fetched in ranges.
fn changed(key: &str) -> Error {
    Error::remote(
        format!("GET '{key}'"),
        412,
        "the object changed since the download started; pull it again",
    )
}

/// Copies a download's body to `write`, counting progress, and at most
/// `room` bytes: a body that runs past what the store stated fails at once,
/// before the excess is written. A read failure is a network error (the
/// download is retried), a write failure a local one.
fn copy_body(
    body: &mut dyn Read,
    key: &str,
    room: Option<u64>,
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
        if let Some(room) = room.filter(|&room| total + n as u64 > room) {
            return Err(Error::Protocol(format!(
                "the store sent more than the {room} bytes it stated for '{key}' (the object may have been replaced during the pull); nothing was kept: pull it again"
            )));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A body longer than stated fails before the excess is written.
    #[test]
    fn never_more_than_the_stated_length_is_written() {
        let body = vec![7u8; 200_000];
        let mut written = 0usize;
        let result = copy_body(&mut &body[..], "k", Some(100_000), |chunk| {
            written += chunk.len();
            Ok(())
        });
        assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
        assert!(written <= 100_000, "{written} bytes written");
        let exact = copy_body(&mut &body[..], "k", Some(200_000), |_| Ok(()));
        assert_eq!(exact.ok(), Some(200_000));
        let unstated = copy_body(&mut &body[..], "k", None, |_| Ok(()));
        assert_eq!(unstated.ok(), Some(200_000));
    }
}
