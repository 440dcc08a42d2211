//! The transfer engine: push, pull and yank, the same for every backend.
//!
//! Every conflict is checked before anything is written: a push checks the
//! whole tree against the store first; a pull into an existing destination
//! without --force checks every object first, and otherwise streams — each
//! list page, once checked, feeds the download workers while the listing
//! goes on. Parallel
//! workers run the backend's object-level operations. Downloads land in a temporary file
//! beside their destination and are renamed into place only when complete.
//! The engine counts files and bytes for the summary line and, when a run
//! fails part way, says which files made it and which did not.

mod destination;
pub mod walk;

use std::path::{Path, PathBuf};

use crate::atomic::TempFile;
use crate::backend::{Backend, Intent, RemoteObject, Source};
use crate::error::{Error, Result, Side};
use crate::pool;
use crate::progress;
use crate::report::Totals;
use destination::Destination;

/// What the user's PATH means for a push.
pub enum PushSource<'a> {
    Path(&'a Path),
    Stdin,
}

/// Stores `source` at `remote`: a file, a tree, or standard input.
pub fn push(
    backend: &dyn Backend,
    source: PushSource<'_>,
    remote: &str,
    force: bool,
    parallelism: usize,
) -> Result<Totals> {
    let items = match source {
        PushSource::Path(path) => walk::walk(path, remote)?,
        PushSource::Stdin => {
            let uploads = backend.prepare_push(&[remote.to_string()], force)?;
            let mut bytes = 0;
            for upload in &uploads {
                bytes += backend.put(upload, Source::Stdin, force)?;
            }
            return Ok(Totals {
                files: uploads.len(),
                bytes,
            });
        }
    };
    if items.is_empty() {
        crate::log::info("Warning: there are no files to push in that directory.");
        return Ok(Totals::default());
    }
    let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
    let uploads = backend.prepare_push(&keys, force)?;
    drop(keys);
    let _progress = progress::Reporter::start("Pushing");
    items.iter().for_each(|i| progress::planned(Some(i.size)));
    let work = items.iter().zip(&uploads);
    let (_, outcomes) = pool::stream(parallelism, feed_all(work), |(item, upload)| {
        let bytes = backend.put(upload, Source::File(&item.local, item.size), force)?;
        progress::file_done();
        Ok(bytes)
    });
    summarize(Ok(()), outcomes, |(_, upload)| &upload.key)
}

/// Downloads everything at `remote` to `local`. Downloads start while the
/// listing is still coming in, unless a file could already be in the way:
/// then every object is checked before any is written.
pub fn pull(
    backend: &dyn Backend,
    remote: &str,
    local: &Path,
    force: bool,
    parallelism: usize,
) -> Result<Totals> {
    let mut destination = Destination::new(remote, local, force);
    let hold = destination.may_conflict();
    let _progress = progress::Reporter::start("Pulling");
    let produce = |feed: &mut dyn FnMut((RemoteObject, PathBuf)) -> bool| {
        let mut held = Vec::new();
        backend.list_pages(remote, Intent::Pull, &mut |page| {
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
                return Ok(true);
            }
            Ok(admitted.into_iter().all(&mut *feed))
        })?;
        for item in held {
            if !feed(item) {
                break;
            }
        }
        Ok(())
    };
    let (listed, outcomes) = pool::stream(parallelism, produce, |(object, path)| {
        let mut temp = TempFile::create(path)?;
        let bytes = backend.get(object, temp.file())?;
        temp.commit(path, force, &path.display().to_string(), Side::Local)?;
        progress::file_done();
        Ok(bytes)
    });
    if outcomes.is_empty() {
        listed?;
        return Err(Error::NotFound(remote.to_string()));
    }
    summarize(listed, outcomes, |(object, _)| &object.key)
}

/// Deletes everything at `remote`.
pub fn yank(backend: &dyn Backend, remote: &str, parallelism: usize) -> Result<Totals> {
    let objects = backend.list(remote, Intent::Yank)?;
    if objects.is_empty() {
        return Err(Error::NotFound(remote.to_string()));
    }
    let (_, outcomes) = pool::stream(parallelism, feed_all(objects), |object| {
        backend.delete(object).map(|()| 0)
    });
    summarize(Ok(()), outcomes, |object| &object.key)
}

/// A producer for `pool::stream` that feeds `items` until one fails.
fn feed_all<T>(
    items: impl IntoIterator<Item = T>,
) -> impl FnOnce(&mut dyn FnMut(T) -> bool) -> Result<()> {
    |feed| {
        for item in items {
            if !feed(item) {
                break;
            }
        }
        Ok(())
    }
}

/// Totals of a run, or its first error with what did and did not complete.
/// `produced` is what finding the items came to: a listing that broke off
/// after some files were transferred leaves the total unknown.
fn summarize<T>(
    produced: Result<()>,
    outcomes: Vec<pool::Outcome<T, u64>>,
    key: impl Fn(&T) -> &str,
) -> Result<Totals> {
    let fed = outcomes.len();
    let mut totals = Totals::default();
    let mut failed = Vec::new();
    let mut first = None;
    for (item, outcome) in outcomes {
        match outcome {
            Some(Ok(bytes)) => {
                totals.files += 1;
                totals.bytes += bytes;
            }
            Some(Err(e)) => {
                failed.push(key(&item).to_string());
                first.get_or_insert(e);
            }
            None => failed.push(key(&item).to_string()),
        }
    }
    let total = if produced.is_ok() { Some(fed) } else { None };
    let first = match (first, produced) {
        (None, Ok(())) => return Ok(totals),
        (Some(e), _) | (None, Err(e)) => e,
    };
    if fed == 1 && total.is_some() {
        return Err(first);
    }
    Err(Error::Partial {
        done: totals.files,
        total,
        failed,
        first: Box::new(first),
    })
}
