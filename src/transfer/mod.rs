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
//!   from the `journal` it keeps beside the file;
//! - `outcome` keeps what became of each object and sums a run up;
//! - `unchanged` decides, for --skip-unchanged, whether a local file and a
//!   stored object are proven identical;
//! - `scheduler` runs every request — files, parts, ranges, deletes (in
//!   batches where the store has them) — under
//!   one `budget` of requests in flight, and is the one place requests are
//!   retried.
//!
//! Every conflict is checked before anything is written: a push checks the
//! whole tree against the store first; a pull into an existing destination
//! without --force checks every object first, and otherwise streams — each
//! list page, once checked, feeds the downloads while the listing goes on.
//! When a run fails part way, the engine says which files made it and which
//! did not.

mod budget;
mod destination;
mod journal;
mod outcome;
mod push;
mod receive;
mod scheduler;
mod spool;
mod unchanged;
pub mod walk;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use budget::Budget;
pub use outcome::{Options, Totals};
pub use push::{push, PushSource};

use crate::backend::{Backend, Intent, RemoteObject};
use crate::error::{Error, Result};
use crate::progress;
use destination::Destination;
use outcome::{conclude, finish, skip, Slot};
use scheduler::Ctx;

/// Downloads everything at `remote` to `local`. Downloads start while the
/// listing is still coming in, unless a file could already be in the way:
/// then every object is checked before any is written. With --force
/// --skip-unchanged, a local file proven identical is left as it is.
pub fn pull(backend: &dyn Backend, remote: &str, local: &Path, opts: &Options) -> Result<Totals> {
    let mut destination = Destination::new(remote, local, opts.force);
    let hold = destination.may_conflict();
    let _progress = progress::Reporter::start("Pulling");
    let fed: std::sync::Mutex<Vec<(String, Arc<Slot>)>> = Default::default();
    let (listed, budget) = scheduler::run(opts.budget.clone(), opts.retry, |ctx| {
        let feed = |object: RemoteObject, path: PathBuf| {
            let slot = Arc::new(Slot::new());
            if let Ok(mut fed) = fed.lock() {
                fed.push((object.key.clone(), Arc::clone(&slot)));
            }
            let force = opts.force;
            let compare = opts.force && opts.skip_unchanged;
            ctx.feed(Box::new(move |ctx| {
                if compare && unchanged::check_pull(ctx, backend, &object, &path) {
                    return skip(&slot, &object.key, object.size.unwrap_or(0));
                }
                receive::fetch(ctx, backend, object, path, force, slot)
            }));
        };
        let mut held = Vec::new();
        let listed = list(ctx, backend, remote, Intent::Pull, |page| {
            // A whole page is checked before any of it is fetched.
            let mut admitted = Vec::with_capacity(page.len());
            for object in page {
                if let Some(path) = destination.admit(&object.key)? {
                    progress::planned(object.size);
                    admitted.push((object, path));
                }
            }
            if hold {
                held.extend(admitted);
            } else {
                admitted.into_iter().for_each(|(o, p)| feed(o, p));
            }
            Ok(!ctx.stopping())
        });
        if listed.is_ok() {
            held.into_iter().for_each(|(o, p)| feed(o, p));
        }
        listed
    });
    conclude(remote, listed, &budget, fed)
}

/// Deletes everything at `remote`, in batches of as many objects as one
/// request of the store may delete (`delete_batch`), one request each. The
/// whole listing comes first: stores whose listing walks a file system
/// (s3s-fs, MinIO's FS mode) fail a continuation whose place was deleted
/// under it.
pub fn yank(backend: &dyn Backend, remote: &str, opts: &Options) -> Result<Totals> {
    let fed: std::sync::Mutex<Vec<(String, Arc<Slot>)>> = Default::default();
    let (listed, budget) = scheduler::run(opts.budget.clone(), opts.retry, |ctx| {
        let mut all = Vec::new();
        list(ctx, backend, remote, Intent::Yank, |page| {
            all.extend(page);
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
    conclude(remote, listed, &budget, fed)
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
