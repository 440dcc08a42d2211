//! The transfer engine: push, pull and yank, the same for every backend.
//!
//! The engine owns the bytes and the requests; backends only speak object
//! operations (`crate::backend`). Its parts:
//! - `walk`: what a push sends; `destination`: where a pull writes, checked
//!   as the listing arrives;
//! - `push` builds every upload body, splits large files into parts and
//!   reads standard input, through a private `spool` file where the store
//!   needs the length first; `receive` lands every download in a temporary
//!   file, counting, hashing, checking and resuming — across runs too,
//!   from the `journal` it keeps beside the file, under `resume`'s one rule
//!   for what a dead run left;
//! - `outcome` keeps what became of each object and sums a run up;
//! - `catalog` shows what is stored, for `list`, one page at a time;
//! - `unchanged` decides, for --skip-unchanged, whether a local file and a
//!   stored object are proven identical;
//! - `scheduler` runs every request — files, parts, ranges, deletes (in
//!   batches where the store has them) — under
//!   one `budget` of requests in flight, and is the one place requests are
//!   retried.
//!
//! Every conflict is checked before anything is written: a push checks the
//! whole tree against the store first; a pull checks every object of the
//! listing (names, files in the way) before it fetches any. With
//! --include/--exclude (`crate::pattern`), both look only at the files
//! selected: a push filters the walk, a pull its listing.
//! When a run fails part way, the engine says which files made it and which
//! did not.

mod budget;
mod catalog;
mod destination;
pub(crate) mod journal;
mod outcome;
mod push;
mod receive;
mod resume;
mod scheduler;
mod spool;
mod unchanged;
pub mod walk;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use budget::Budget;
pub use catalog::catalog;
pub use outcome::{Options, Totals};
pub use push::{push, PushSource};

use crate::backend::{Backend, Intent, RemoteObject};
use crate::error::{Error, Result, Side};
use crate::pattern::Selection;
use crate::progress;
use destination::Destination;
use outcome::{conclude, finish, skip, Slot};
use scheduler::Ctx;

/// Downloads everything at `remote` to `local`. The whole listing is
/// checked first (`Destination`): a key that would land outside the
/// destination, or a file in the way, stops the pull before anything is
/// written. With --force --skip-unchanged, a local file proven identical is
/// left as it is. Only the objects `selection` takes are fetched.
pub fn pull(
    backend: &dyn Backend,
    remote: &str,
    local: &Path,
    opts: &Options,
    selection: &mut Selection,
) -> Result<Totals> {
    let resume = resume::Resume::default();
    let mut destination = Destination::new(remote, local, opts.force, &resume);
    let _progress = progress::Reporter::start("Pulling");
    let fed: std::sync::Mutex<Vec<(String, Arc<Slot>)>> = Default::default();
    let puller = receive::Puller {
        backend,
        resume: &resume,
        force: opts.force,
    };
    let (listed, budget) = scheduler::run(opts.budget.clone(), opts.retry, |ctx| {
        let feed = |object: RemoteObject, path: PathBuf| {
            let slot = Arc::new(Slot::new());
            if let Ok(mut fed) = fed.lock() {
                fed.push((object.key.clone(), Arc::clone(&slot)));
            }
            let compare = opts.force && opts.skip_unchanged;
            ctx.feed(Box::new(move |ctx| {
                if compare && unchanged::check_pull(ctx, backend, &object, &path) {
                    return skip(&slot, &object.key, object.size.unwrap_or(0));
                }
                receive::fetch(ctx, puller, object, path, slot)
            }));
        };
        let mut admitted = Vec::new();
        let mut shapes = Shapes::default();
        let mut stored = false;
        let listed = list(ctx, backend, remote, Intent::Pull, |page| {
            shapes.see(remote, &page)?;
            for object in page {
                stored = true;
                if !selected(selection, remote, &object.key)? {
                    continue;
                }
                if let Some(path) = destination.admit(&object.key)? {
                    progress::planned(object.size);
                    admitted.push((object, path));
                }
            }
            Ok(!ctx.stopping())
        })
        .and_then(|()| selection_end(selection, remote, stored, !admitted.is_empty()));
        if listed.is_ok() {
            admitted.into_iter().for_each(|(o, p)| feed(o, p));
        }
        listed
    });
    conclude(remote, listed, &budget, fed)
}

/// Whether the stored object at `key`, listed for the directory `remote`,
/// is one `selection` takes, by its path below `remote`. Patterns choose
/// among a directory's files: the name given being a file itself is a
/// usage error. Folder markers and keys outside `remote/` are left for the
/// caller to skip.
fn selected(selection: &mut Selection, remote: &str, key: &str) -> Result<bool> {
    if !selection.is_active() || key.ends_with('/') {
        return Ok(true);
    }
    if key == remote {
        return Err(Error::Usage(format!(
            "'{}' is a single file, and --include/--exclude choose among the files of a directory; name the file without patterns",
            key.escape_debug()
        )));
    }
    match key
        .strip_prefix(remote)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(path) => Ok(selection.takes(path)),
        None => Ok(true),
    }
}

/// The end of a listing filtered by `selection`: a warning for each
/// pattern that matched no file, and something `stored` but nothing
/// `taken` is `NothingSelected`.
fn selection_end(selection: &Selection, remote: &str, stored: bool, taken: bool) -> Result<()> {
    if !selection.is_active() {
        return Ok(());
    }
    selection.warn_unmatched();
    match stored && !taken {
        true => Err(Error::NothingSelected {
            side: Side::Remote,
            path: remote.to_string(),
        }),
        false => Ok(()),
    }
}

/// What a listing of a name has shown so far: a file at the name itself,
/// and one under `name/`. A name that is both (only a store without
/// directories can hold that) cannot be pulled or yanked as one thing.
#[derive(Default)]
struct Shapes {
    file: Option<String>,
    under: Option<String>,
}

impl Shapes {
    /// Takes in one page of the listing of `remote`: an error once the
    /// name has shown both shapes, naming both keys. Folder markers
    /// (`name/…/`) are not files.
    fn see(&mut self, remote: &str, page: &[RemoteObject]) -> Result<()> {
        for object in page {
            if object.key == remote {
                self.file.get_or_insert_with(|| object.key.clone());
            } else if is_file_under(remote, &object.key) {
                self.under.get_or_insert_with(|| object.key.clone());
            }
        }
        match (&self.file, &self.under) {
            (Some(file), Some(under)) => Err(Error::Protocol(format!(
                "'{file}' is both a file and a directory in the remote storage (it holds '{file}' and '{under}'), so it is unclear which is meant; name a file under it by its own path, or yank those files first and then the name alone"
            ))),
            _ => Ok(()),
        }
    }
}

/// Whether `key` is a file under `name/` (not a folder marker `name/…/`).
fn is_file_under(name: &str, key: &str) -> bool {
    key.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.is_empty() && !rest.ends_with('/'))
}

/// Deletes everything at `remote`, in batches of as many objects as one
/// request of the store may delete (`delete_batch`), one request each. The
/// whole listing comes first: stores whose listing walks a file system
/// (s3s-fs, MinIO's FS mode) fail a continuation whose place was deleted
/// under it.
pub fn yank(backend: &dyn Backend, remote: &str, opts: &Options) -> Result<Totals> {
    let mut shapes = Shapes::default();
    let (deleted, _) = delete_listed(backend, remote, opts.budget.clone(), opts, |page| {
        shapes.see(remote, &page)?;
        Ok(page)
    });
    deleted
}

/// Deletes what `pick` takes of each page of the listing of `remote`, as
/// `yank` does, within `budget`; gives the budget as it ended too.
fn delete_listed(
    backend: &dyn Backend,
    remote: &str,
    budget: Budget,
    opts: &Options,
    mut pick: impl FnMut(Vec<RemoteObject>) -> Result<Vec<RemoteObject>>,
) -> (Result<Totals>, Budget) {
    let fed: std::sync::Mutex<Vec<(String, Arc<Slot>)>> = Default::default();
    let (listed, budget) = scheduler::run(budget, opts.retry, |ctx| {
        let mut all = Vec::new();
        list(ctx, backend, remote, Intent::Yank, |page| {
            all.extend(pick(page)?);
            Ok(!ctx.stopping())
        })?;
        while !all.is_empty() {
            let batch = backend.delete_batch().max(1);
            let rest = all.split_off(all.len().min(batch));
            let objects = std::mem::replace(&mut all, rest);
            let slots: Vec<Arc<Slot>> = objects.iter().map(|_| Arc::default()).collect();
            if let Ok(mut fed) = fed.lock() {
                fed.extend(objects.iter().map(|o| o.key.clone()).zip(slots.clone()));
            }
            ctx.feed(Box::new(move |ctx| {
                delete_batch(ctx, backend, objects, slots)
            }));
        }
        Ok(())
    });
    (conclude(remote, listed, &budget, fed), budget)
}

/// Deletes `objects` in one request, filling each one's slot; where the
/// store refuses the batch, queues one DELETE per object. When the batch
/// request fails, its first object carries the error and none counts as
/// deleted.
fn delete_batch<'env>(
    ctx: &Ctx<'_, '_, 'env>,
    backend: &'env dyn Backend,
    objects: Vec<RemoteObject>,
    slots: Vec<Arc<Slot>>,
) {
    if ctx.stopping() {
        return;
    }
    let batch = match objects.len() {
        1 => Ok(None),
        n => ctx.request(&format!("DeleteObjects of {n} objects"), None, |_| {
            backend.delete_many(&objects)
        }),
    };
    match batch {
        Ok(Some(failures)) => {
            let mut failures: HashMap<String, Error> = failures.into_iter().collect();
            for (object, slot) in objects.iter().zip(&slots) {
                let outcome = failures.remove(&object.key).map_or(Ok(0), Err);
                finish(ctx, slot, outcome);
            }
        }
        Ok(None) => {
            for (object, slot) in objects.into_iter().zip(slots) {
                ctx.follow_up(Box::new(move |ctx| {
                    if ctx.stopping() {
                        return;
                    }
                    let what = format!("DELETE '{}'", object.key);
                    let result = ctx.request(&what, Some(0), |_| backend.delete(&object));
                    finish(ctx, &slot, result.map(|()| 0));
                }));
            }
        }
        Err(e) => {
            if let Some(first) = slots.first() {
                finish(ctx, first, Err(e));
            }
        }
    }
}

/// Lists what is at `key` page by page, each page retried on its own,
/// until `page` answers false or the listing ends.
fn list(
    ctx: &Ctx<'_, '_, '_>,
    backend: &dyn Backend,
    key: &str,
    intent: Intent,
    mut page: impl FnMut(Vec<RemoteObject>) -> Result<bool>,
) -> Result<()> {
    let mut token: Option<String> = None;
    loop {
        let listed = ctx.request(&format!("listing '{key}'"), None, |_| {
            backend.list_page(key, intent, token.as_deref())
        })?;
        if !page(listed.objects)? {
            return Ok(());
        }
        match listed.next {
            Some(next) => token = Some(next),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
