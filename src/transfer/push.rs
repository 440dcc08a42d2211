//! Push: files, trees and standard input into the store.
//!
//! The engine builds every body: a small file is read once into memory, a
//! larger one is sent as a slice of the open file, a file larger than the
//! store's part size goes up in parts (each part its own request in the
//! budget, alongside other files), and standard input is read here and only
//! here — in parts held in memory where the store has multipart uploads,
//! else spooled to a temporary file, since a signed PUT needs the length
//! first. A file that changes size while it is pushed is an error, checked
//! here and only here. With --force --skip-unchanged, each file is first
//! compared with the object listed at its key (`unchanged`).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::budget::Budget;
use super::outcome::{finish, log_budget, skip, summarize, Moved, Options, Slot, Totals};
use super::scheduler::{self, Ctx};
use super::spool;
use super::unchanged::{self, Digests};
use super::walk::{self, Item};
use crate::backend::{
    Attempt, Backend, Body, Claim, Intent, Multipart, Part, RemoteObject, Upload,
};
use crate::error::{Error, Result, Side};
use crate::pattern::Selection;
use crate::{interrupt, log, progress};

/// Files up to this size are read into memory once rather than read twice
/// (to hash, then to send); memory stays at requests in flight × this.
const READ_ONCE_MAX: u64 = 256 * 1024;

/// What the user's PATH means for a push.
pub enum PushSource<'a> {
    Path(&'a Path),
    Stdin,
}

/// Stores `source` at `remote`: a file, a tree, or standard input; of a
/// tree, only the files `selection` takes.
pub fn push(
    backend: &dyn Backend,
    source: PushSource<'_>,
    remote: &str,
    opts: &Options,
    selection: &mut Selection,
) -> Result<Totals> {
    let items = match source {
        PushSource::Stdin => {
            log::debug(|| format!("reading standard input, to push to '{remote}'"));
            return push_stdin(backend, remote, opts);
        }
        PushSource::Path(path) => select(walk::walk(path, remote)?, path, remote, selection)?,
    };
    if items.is_empty() {
        log::info("Warning: there are no files to push in that directory.");
        return Ok(Totals::default());
    }
    let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
    let (mut uploads, budget) = prepare(backend, remote, &keys, opts)?;
    drop(keys);
    for (upload, item) in uploads.iter_mut().zip(&items) {
        upload.mode = item.mode;
    }
    let (stored, budget) = match opts.force && opts.skip_unchanged {
        true => unchanged::listing(backend, remote, budget, opts.retry),
        false => (Default::default(), budget),
    };
    let _progress = progress::Reporter::start("Pushing");
    items.iter().for_each(|i| progress::planned(Some(i.size)));
    let slots: Vec<Arc<Slot>> = items.iter().map(|_| Arc::default()).collect();
    let ((), budget) = scheduler::run(budget, opts.retry, |ctx| {
        for ((item, upload), slot) in items.iter().zip(&uploads).zip(&slots) {
            if ctx.stopping() {
                break;
            }
            let slot = Arc::clone(slot);
            let stored = stored.get(&item.key);
            ctx.feed(Box::new(move |ctx| {
                put_file(ctx, backend, item, upload, stored, slot)
            }));
        }
    });
    log_budget(&budget);
    summarize(Ok(()), uploads.into_iter().map(|u| u.key).zip(slots))
}

/// The walked `items` of `source`, pushed to `remote`, that `selection`
/// takes, by their path below `remote`: before any conflict is checked,
/// so that the check covers these alone. Patterns choose among the files
/// of a directory: on a single file they are a usage error.
fn select(
    items: Vec<Item>,
    source: &Path,
    remote: &str,
    selection: &mut Selection,
) -> Result<Vec<Item>> {
    if !selection.is_active() {
        return Ok(items);
    }
    if items.first().is_some_and(|item| item.key == remote) {
        return Err(Error::Usage(format!(
            "'{}' is a single file, and --include/--exclude choose among the files of a directory; push the file without patterns",
            source.display()
        )));
    }
    let items: Vec<Item> = items
        .into_iter()
        .filter(|item| {
            let path = item
                .key
                .strip_prefix(remote)
                .and_then(|r| r.strip_prefix('/'));
            path.is_some_and(|path| selection.takes(path))
        })
        .collect();
    selection.warn_unmatched();
    if items.is_empty() {
        return Err(Error::NothingSelected {
            side: Side::Local,
            path: source.display().to_string(),
        });
    }
    Ok(items)
}

/// The uploads for `keys`, the files of a push to `remote`, with every
/// conflict checked: first that the name is not a stored file where a tree
/// goes, nor a stored tree where a file goes (`clash`; --force removes it),
/// then each key, in one step where the backend can, else one request per
/// key within the budget. Every request goes through the scheduler, so a
/// store that throttles these already slows the transfers that follow.
pub(super) fn prepare(
    backend: &dyn Backend,
    remote: &str,
    keys: &[String],
    opts: &Options,
) -> Result<(Vec<Upload>, Budget)> {
    let tree = keys.iter().any(|k| k != remote);
    let (stored, mut budget) = scheduler::run(opts.budget.clone(), opts.retry, |ctx| {
        clash(ctx, backend, remote, tree)
    });
    if let Some(stored) = stored? {
        if !opts.force {
            return Err(Error::AlreadyExists {
                side: Side::Remote,
                path: stored,
            });
        }
        log::debug(|| format!("removing what is stored at '{remote}' in the way of the push"));
        let deleted;
        (deleted, budget) = super::delete_listed(backend, remote, budget, opts, |page| {
            Ok(page
                .into_iter()
                .filter(|o| clashes(remote, tree, &o.key))
                .collect())
        });
        match deleted {
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let (uploads, budget) = scheduler::run(budget, opts.retry, |ctx| {
        ctx.request("preparing the push", None, |_| {
            backend.prepare_push(keys, opts.force)
        })
    });
    let uploads = uploads?;
    if opts.force || uploads.iter().all(|u| u.probe.is_none()) {
        return Ok((uploads, budget));
    }
    // The first key in order that is taken, and the first failure.
    let taken: Mutex<Option<(usize, String)>> = Mutex::new(None);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let ((), budget) = scheduler::run(budget, opts.retry, |ctx| {
        for (index, upload) in uploads.iter().enumerate() {
            if ctx.stopping() {
                break;
            }
            let (taken, failure) = (&taken, &failure);
            ctx.feed(Box::new(move |ctx| {
                if ctx.stopping() {
                    return;
                }
                let what = format!("HEAD '{}'", upload.key);
                match ctx.request(&what, Some(0), |_| backend.is_taken(upload)) {
                    Ok(false) => {}
                    Ok(true) => {
                        if let Ok(mut t) = taken.lock() {
                            if t.as_ref().is_none_or(|(i, _)| index < *i) {
                                *t = Some((index, upload.key.clone()));
                            }
                        }
                        ctx.stop();
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        ctx.stop();
                    }
                }
            }));
        }
    });
    if let Some((_, path)) = taken.into_inner().ok().flatten() {
        return Err(Error::AlreadyExists {
            side: Side::Remote,
            path,
        });
    }
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok((uploads, budget))
}

/// The stored key a push to `remote` clashes with, if any: for a tree, a
/// file at the name itself; for a file, any file under `remote/` (a pull
/// of the name would find both, and could not tell which is meant). A
/// tree asks `exists`; a file lists the name (on the Hub, either is one
/// request of the pull type).
fn clash(
    ctx: &Ctx<'_, '_, '_>,
    backend: &dyn Backend,
    remote: &str,
    tree: bool,
) -> Result<Option<String>> {
    if tree {
        let what = format!("checking what is stored at '{remote}'");
        return match ctx.request(&what, None, |_| backend.exists(remote)) {
            Ok(true) => Ok(Some(remote.to_string())),
            Ok(false) | Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
    }
    let mut found = None;
    let listed = super::list(ctx, backend, remote, Intent::Probe, |page| {
        found = (page.into_iter())
            .find(|o| clashes(remote, false, &o.key))
            .map(|o| o.key);
        Ok(found.is_none())
    });
    match listed {
        Ok(()) | Err(Error::NotFound(_)) => Ok(found),
        Err(e) => Err(e),
    }
}

/// Whether the stored `key` is in the way of a push of a tree (`tree`) or
/// a file to `remote`.
fn clashes(remote: &str, tree: bool, key: &str) -> bool {
    match tree {
        true => key == remote,
        false => super::is_file_under(remote, key),
    }
}

/// The part size a file of `size` bytes goes up in, when it goes up in
/// parts rather than one PUT.
pub(super) fn parts_for(backend: &dyn Backend, size: u64) -> Option<u64> {
    let part_size = backend.multipart()?.part_size(size);
    (size > part_size).then_some(part_size)
}

/// Sends one file, unless it is the same as `stored`, the object listed
/// at its key when unchanged files are skipped.
fn put_file<'env>(
    ctx: &Ctx<'_, '_, 'env>,
    backend: &'env dyn Backend,
    item: &'env Item,
    upload: &'env Upload,
    stored: Option<&RemoteObject>,
    slot: Arc<Slot>,
) {
    if ctx.stopping() {
        return;
    }
    let known = match stored.map(|s| unchanged::check_push(ctx, backend, item, s)) {
        None => None,
        Some(Ok(unchanged::Push::Unchanged)) => return skip(&slot, &item.key, item.size),
        Some(Ok(unchanged::Push::Changed(known))) => known,
        Some(Err(e)) => return finish(ctx, &slot, Err(e)),
    };
    let file = match File::open(&item.local) {
        Ok(file) => file,
        Err(e) => return finish(ctx, &slot, Err(Error::local_io("open", &item.local, e))),
    };
    if let (Some(multipart), Some(part_size)) = (backend.multipart(), parts_for(backend, item.size))
    {
        let source = PartSource::File {
            file,
            path: &item.local,
            size: item.size,
            known,
        };
        return Multi::start(ctx, multipart, upload, source, part_size, slot);
    }
    let sha256 = known.and_then(|k| k.whole_sha256());
    let result = put_whole(ctx, backend, item, upload, &file, sha256);
    finish(ctx, &slot, result);
}

/// One PUT of a whole file; `sha256` when its digest is already known
/// (used for a file sent from disk, which would otherwise be read twice).
fn put_whole(
    ctx: &Ctx<'_, '_, '_>,
    backend: &dyn Backend,
    item: &Item,
    upload: &Upload,
    file: &File,
    sha256: Option<[u8; 32]>,
) -> Result<u64> {
    let path = &item.local;
    let bytes;
    let body = if item.size <= READ_ONCE_MAX {
        let mut buf = Vec::with_capacity(item.size as usize);
        file.take(item.size + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::local_io("read", path, e))?;
        if buf.len() as u64 != item.size {
            return Err(changed_size(path, item.size, buf.len() as u64));
        }
        bytes = buf;
        // Hashed from the bytes in memory, the very bytes sent.
        Body::bytes(&bytes)
    } else {
        Body::slice(file, path, 0, item.size).with_sha256(sha256)
    };
    let sent = send(ctx, backend, upload, &body, Some((path, item.size)));
    check_unchanged(path, item.size)?;
    sent.map(|()| item.size)
}

/// One PUT of a whole object. A file (`source`) whose size changed between
/// attempts fails at once with that reason.
fn send(
    ctx: &Ctx<'_, '_, '_>,
    backend: &dyn Backend,
    upload: &Upload,
    body: &Body<'_>,
    source: Option<(&Path, u64)>,
) -> Result<()> {
    let mut attempt = Attempt::default();
    ctx.request(&format!("PUT '{}'", upload.key), Some(body.len()), |n| {
        if let (Some((path, size)), true) = (source, n > 1) {
            check_unchanged(path, size)?;
        }
        attempt.number = n;
        backend.put(upload, body, &mut attempt)
    })
}

/// Fails if the file at `path` no longer has the size it was planned
/// with: a file that grows or shrinks meanwhile (a log still being
/// written) is an error rather than a silently truncated object.
fn check_unchanged(path: &Path, planned: u64) -> Result<()> {
    let now = fs::metadata(path)
        .map_err(|e| Error::local_io("read", path, e))?
        .len();
    if now == planned {
        Ok(())
    } else {
        Err(changed_size(path, planned, now))
    }
}

fn changed_size(path: &Path, planned: u64, now: u64) -> Error {
    Error::local_io(
        "push",
        path,
        io::Error::other(format!(
            "the file changed size while being pushed ({planned} -> {now} bytes); push it again once it is complete"
        )),
    )
}

/// Where a multipart upload's parts come from.
enum PartSource<'env> {
    /// Slices of an open file; their digests, when already read.
    File {
        file: File,
        path: &'env Path,
        size: u64,
        known: Option<Digests>,
    },
    /// Standard input: each part task owns its bytes.
    Stdin,
}

/// One multipart upload in progress, shared by its part tasks. The last
/// part to finish completes the upload, or aborts it if anything failed.
struct Multi<'env> {
    multipart: &'env dyn Multipart,
    upload: &'env Upload,
    source: PartSource<'env>,
    /// The placeholder holding the key until the upload completes.
    claim: Option<Claim>,
    id: String,
    parts: Mutex<Vec<Part>>,
    /// Parts not yet finished, plus one while parts are still being queued.
    left: AtomicUsize,
    failure: Mutex<Option<Error>>,
    bytes: AtomicU64,
    /// Standard-input parts held in memory, and a wake-up when one is sent.
    held: (Mutex<usize>, Condvar),
}

impl<'env> Multi<'env> {
    fn create(
        ctx: &Ctx<'_, '_, 'env>,
        multipart: &'env dyn Multipart,
        upload: &'env Upload,
        source: PartSource<'env>,
        part_size: u64,
    ) -> Result<Arc<Multi<'env>>> {
        let claim = claim(ctx, multipart, upload)?;
        let what = format!("CreateMultipartUpload '{}'", upload.key);
        let id = match ctx.request(&what, None, |_| multipart.create(upload, part_size)) {
            Ok(id) => id,
            Err(e) => {
                unclaim(multipart, upload, claim.as_ref());
                return Err(e);
            }
        };
        log::debug(|| format!("multipart upload of '{}' started", upload.key));
        Ok(Arc::new(Multi {
            multipart,
            upload,
            source,
            claim,
            id,
            parts: Mutex::new(Vec::new()),
            left: AtomicUsize::new(1),
            failure: Mutex::new(None),
            bytes: AtomicU64::new(0),
            held: (Mutex::new(0), Condvar::new()),
        }))
    }

    /// Creates the upload of a file and queues its parts.
    fn start(
        ctx: &Ctx<'_, '_, 'env>,
        multipart: &'env dyn Multipart,
        upload: &'env Upload,
        source: PartSource<'env>,
        part_size: u64,
        slot: Arc<Slot>,
    ) {
        let size = match &source {
            PartSource::File { size, .. } => *size,
            PartSource::Stdin => 0,
        };
        let multi = match Multi::create(ctx, multipart, upload, source, part_size) {
            Ok(multi) => multi,
            Err(e) => return finish(ctx, &slot, Err(e)),
        };
        for index in 0..size.div_ceil(part_size) {
            let offset = index * part_size;
            let len = part_size.min(size - offset);
            multi.queue_part(ctx, index as u32 + 1, &slot, move |multi, ctx, number| {
                let PartSource::File {
                    file, path, known, ..
                } = &multi.source
                else {
                    return Err(Error::Protocol("a file part without its file".into()));
                };
                let sha256 = known.as_ref().and_then(|k| k.part_sha256(index as usize));
                let body = Body::slice(file, path, offset, len).with_sha256(sha256);
                multi.send_part(ctx, number, &body)
            });
        }
        multi.release(ctx, &slot);
    }

    /// Queues part `number`, sent by `send`, ahead of new files.
    fn queue_part(
        self: &Arc<Self>,
        ctx: &Ctx<'_, '_, 'env>,
        number: u32,
        slot: &Arc<Slot>,
        send: impl FnOnce(&Multi<'env>, &Ctx<'_, '_, 'env>, u32) -> Result<()> + Send + 'env,
    ) {
        self.left.fetch_add(1, Ordering::SeqCst);
        let multi = Arc::clone(self);
        let slot = Arc::clone(slot);
        ctx.follow_up(Box::new(move |ctx| {
            if !ctx.stopping() && multi.healthy() {
                if let Err(e) = send(&multi, ctx, number) {
                    multi.fail(ctx, e);
                }
            }
            multi.release(ctx, &slot);
        }));
    }

    fn send_part(&self, ctx: &Ctx<'_, '_, 'env>, number: u32, body: &Body<'_>) -> Result<()> {
        let what = format!("PUT '{}' part {number}", self.upload.key);
        let part = ctx.request(&what, Some(body.len()), |_| {
            self.multipart.put_part(self.upload, &self.id, number, body)
        })?;
        self.bytes.fetch_add(body.len(), Ordering::Relaxed);
        if let Ok(mut parts) = self.parts.lock() {
            parts.push(part);
        }
        Ok(())
    }

    fn healthy(&self) -> bool {
        self.failure.lock().map(|f| f.is_none()).unwrap_or(false)
    }

    fn fail(&self, ctx: &Ctx<'_, '_, 'env>, e: Error) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(e);
        }
        ctx.stop();
    }

    /// Counts one part (or the queuing) done; the last one completes or
    /// aborts the upload and fills the slot.
    fn release(&self, ctx: &Ctx<'_, '_, 'env>, slot: &Slot) {
        if let PartSource::Stdin = self.source {
            let (held, sent) = &self.held;
            if let Ok(mut held) = held.lock() {
                *held = held.saturating_sub(1);
            }
            sent.notify_all();
        }
        if self.left.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let failure = self.failure.lock().ok().and_then(|mut f| f.take());
        if failure.is_some() || ctx.stopping() {
            self.abort(ctx);
            if let Some(e) = failure {
                finish(ctx, slot, Err(e));
            }
            return;
        }
        let result = self.complete(ctx);
        if result.is_err() {
            self.abort(ctx);
        }
        finish(ctx, slot, result);
    }

    fn complete(&self, ctx: &Ctx<'_, '_, 'env>) -> Result<u64> {
        let mut parts = self
            .parts
            .lock()
            .map(|p| p.clone())
            .map_err(|_| Error::Protocol("the list of parts was lost".into()))?;
        parts.sort_by_key(|p| p.number);
        let what = format!("CompleteMultipartUpload '{}'", self.upload.key);
        let mut attempt = Attempt::default();
        ctx.request(&what, None, |n| {
            attempt.number = n;
            let claim = self.claim.as_ref();
            (self.multipart).complete(self.upload, &self.id, &parts, claim, &attempt)
        })?;
        let bytes = self.bytes.load(Ordering::Relaxed);
        if let PartSource::File { path, size, .. } = self.source {
            check_unchanged(path, size)?;
        }
        Ok(bytes)
    }

    /// Best effort: a failed upload must not leave its parts in the
    /// bucket, nor its placeholder at the key.
    fn abort(&self, ctx: &Ctx<'_, '_, 'env>) {
        let what = format!("AbortMultipartUpload '{}'", self.upload.key);
        match ctx.request(&what, None, |_| self.multipart.abort(self.upload, &self.id)) {
            Ok(()) => log::debug(|| format!("multipart upload of '{}' aborted", self.upload.key)),
            Err(e) => log::info(&format!(
                "Warning: could not abort the unfinished upload of '{}' ({e}); a bucket lifecycle rule for incomplete multipart uploads cleans such leftovers.",
                self.upload.key
            )),
        }
        unclaim(self.multipart, self.upload, self.claim.as_ref());
    }

    /// Blocks until fewer than `limit` standard-input parts are in memory,
    /// then counts one more.
    fn hold_one(&self, limit: usize) {
        let (held, sent) = &self.held;
        let Ok(mut held) = held.lock() else { return };
        while *held >= limit.max(1) {
            held = match sent.wait(held) {
                Ok(h) => h,
                Err(_) => return,
            };
        }
        *held += 1;
    }
}

/// Holds the key of an upload that may not overwrite with the store's
/// create-only placeholder (`Multipart::claim`), before any part is sent:
/// racing pushes meet there, and a loser uploads nothing.
fn claim(
    ctx: &Ctx<'_, '_, '_>,
    multipart: &dyn Multipart,
    upload: &Upload,
) -> Result<Option<Claim>> {
    if upload.overwrite {
        return Ok(None);
    }
    let what = format!("PUT '{}' (placeholder)", upload.key);
    let mut attempt = Attempt::default();
    ctx.request(&what, Some(0), |n| {
        attempt.number = n;
        multipart.claim(upload, &attempt)
    })
}

/// Best effort, once, with the short limits of clean-up: removes the
/// placeholder of an upload that will not complete. One left behind makes
/// later pushes without --force stop, naming the remedies.
fn unclaim(multipart: &dyn Multipart, upload: &Upload, claim: Option<&Claim>) {
    let Some(claim) = claim else { return };
    match multipart.unclaim(upload, claim) {
        Ok(()) => log::debug(|| format!("placeholder of '{}' removed", upload.key)),
        Err(e) => log::info(&format!(
            "Warning: could not remove the placeholder of the unfinished upload of '{}' ({e}); yank it, or a later push without --force stops there.",
            upload.key
        )),
    }
}

/// Standard input as one object: a single PUT when it fits in a part (or
/// the store has no multipart uploads), else parts read and sent as the
/// budget allows, at most the limit of them in memory.
fn push_stdin(backend: &dyn Backend, remote: &str, opts: &Options) -> Result<Totals> {
    walk::check_key(remote, Path::new(remote))?;
    let keys = [remote.to_string()];
    let (uploads, budget) = prepare(backend, remote, &keys, opts)?;
    let Some(upload) = uploads.first() else {
        return Err(Error::Protocol(
            "the store gave no upload for the key".into(),
        ));
    };
    let _progress = progress::Reporter::start("Pushing");
    progress::planned(None);
    let slot = Arc::new(Slot::new());
    let input = Path::new("standard input");
    let (result, budget) = match backend.multipart() {
        None => {
            let (file, size) = stdin_as_file()?;
            let body = Body::slice(&file, input, 0, size);
            scheduler::run(budget, opts.retry, |ctx| {
                send(ctx, backend, upload, &body, None).map(|()| Some(size))
            })
        }
        Some(multipart) => {
            let part_size = multipart.part_size(0);
            log::debug(|| {
                format!(
                    "Detected stdin, streaming it in parts of {} held in memory, with no temporary file...",
                    progress::format_bytes(part_size)
                )
            });
            let mut stdin = io::stdin().lock();
            let first = read_part(&mut stdin, part_size)?;
            if (first.len() as u64) < part_size {
                let body = Body::bytes(&first);
                scheduler::run(budget, opts.retry, |ctx| {
                    send(ctx, backend, upload, &body, None).map(|()| Some(first.len() as u64))
                })
            } else {
                let slot = &slot;
                scheduler::run(budget, opts.retry, |ctx| {
                    stdin_in_parts(ctx, multipart, upload, part_size, first, &mut stdin, slot);
                    Ok(None)
                })
            }
        }
    };
    log_budget(&budget);
    let bytes = result?;
    if bytes.is_some() {
        progress::file_done();
    }
    match bytes
        .map(|bytes| Ok(Moved::Bytes(bytes)))
        .or_else(|| Arc::into_inner(slot).and_then(Slot::into_inner))
    {
        Some(Ok(Moved::Bytes(bytes))) => Ok(Totals {
            files: 1,
            bytes,
            skipped: 0,
        }),
        Some(Err(e)) => Err(e),
        // Standard input is never compared, so never skipped (nor absent).
        Some(Ok(Moved::Skipped | Moved::Absent)) | None => {
            interrupt::check()?;
            Err(Error::Protocol("the upload stopped before it ended".into()))
        }
    }
}

fn stdin_in_parts<'env>(
    ctx: &Ctx<'_, '_, 'env>,
    multipart: &'env dyn Multipart,
    upload: &'env Upload,
    part_size: u64,
    first: Vec<u8>,
    stdin: &mut impl Read,
    slot: &Arc<Slot>,
) {
    let multi = match Multi::create(ctx, multipart, upload, PartSource::Stdin, part_size) {
        Ok(multi) => multi,
        Err(e) => return finish(ctx, slot, Err(e)),
    };
    let mut next = Some(first);
    let mut number = 0u32;
    while !ctx.stopping() && multi.healthy() {
        let chunk = match next.take().map_or_else(|| read_part(stdin, part_size), Ok) {
            Ok(chunk) => chunk,
            Err(e) => {
                multi.fail(ctx, e);
                break;
            }
        };
        if chunk.is_empty() {
            break;
        }
        let last = (chunk.len() as u64) < part_size;
        number += 1;
        multi.hold_one(ctx.limit());
        multi.queue_part(ctx, number, slot, move |multi, ctx, number| {
            multi.send_part(ctx, number, &Body::bytes(&chunk))
        });
        if last {
            break;
        }
    }
    // The queuing's own count; sending parts release theirs.
    if let Ok(mut held) = multi.held.0.lock() {
        *held += 1;
    }
    multi.release(ctx, slot);
}

/// Reads up to `size` bytes: a full part, or less at the end of the input.
fn read_part(input: &mut impl Read, size: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    input
        .take(size)
        .read_to_end(&mut buf)
        .map_err(|e| Error::local_io("read", Path::new("standard input"), e))?;
    Ok(buf)
}

/// Standard input as a file of known size: itself when it is a regular
/// file read from its start (`< file`), else spooled to a private
/// temporary file (`spool`), because a signed PUT needs the length before
/// the first byte. `-v` says which, in the Go CLI's words for the spool.
fn stdin_as_file() -> Result<(File, u64)> {
    let input = Path::new("standard input");
    let stdin = stdin_handle().map_err(|e| Error::local_io("read", input, e))?;
    if let Ok(meta) = stdin.metadata() {
        let mut file = stdin;
        let at_start = io::Seek::stream_position(&mut file).is_ok_and(|pos| pos == 0);
        if meta.is_file() && at_start {
            log::debug(|| {
                "Detected stdin, a regular file: sending it as it is, with no temporary file..."
                    .into()
            });
            return Ok((file, meta.len()));
        }
    }
    log::debug(|| "Detected stdin, saving it to a temporary file...".into());
    spool::spool(&mut io::stdin().lock(), &std::env::temp_dir())
}

/// A second handle on standard input, as a `File`.
#[cfg(unix)]
fn stdin_handle() -> io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?))
}

#[cfg(windows)]
fn stdin_handle() -> io::Result<File> {
    use std::os::windows::io::AsHandle;
    Ok(File::from(io::stdin().as_handle().try_clone_to_owned()?))
}
