//! The transfer engine: push, pull and yank, the same for every backend.
//!
//! A command is planned in full before anything is written — every file
//! found, every conflict checked — and then run by parallel workers over the
//! backend's object-level operations. Downloads land in a temporary file
//! beside their destination and are renamed into place only when complete.
//! The engine counts files and bytes for the summary line and, when a run
//! fails part way, says which files made it and which did not.

pub mod walk;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::atomic::{self, TempFile};
use crate::backend::{Backend, Intent, RemoteObject, Source};
use crate::error::{Error, Result, Side};
use crate::paths;
use crate::pool;
use crate::progress;
use crate::report::Totals;

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
    let work: Vec<_> = items.iter().zip(&uploads).collect();
    let total = items.iter().map(|i| i.size).sum();
    let _progress = progress::Reporter::start("Pushing", items.len(), Some(total));
    let results = pool::run(&work, parallelism, |(item, upload)| {
        let bytes = backend.put(upload, Source::File(&item.local, item.size), force)?;
        progress::file_done();
        Ok(bytes)
    });
    summarize(results, &keys)
}

/// Downloads everything at `remote` to `local`.
pub fn pull(
    backend: &dyn Backend,
    remote: &str,
    local: &Path,
    force: bool,
    parallelism: usize,
) -> Result<Totals> {
    let objects = backend.list(remote, Intent::Pull)?;
    let mut plan: Vec<(RemoteObject, PathBuf)> = Vec::with_capacity(objects.len());
    for object in objects {
        match paths::local_path_for(remote, &object.key, local)? {
            Some(path) => plan.push((object, path)),
            None => {
                crate::log::debug(|| format!("skipping '{}': not under '{remote}'", object.key))
            }
        }
    }
    if plan.is_empty() {
        return Err(Error::NotFound(remote.to_string()));
    }
    check_destination(local, &plan)?;
    if !force {
        if let Some((_, taken)) = plan.iter().find(|(_, p)| fs::symlink_metadata(p).is_ok()) {
            return Err(Error::AlreadyExists {
                side: Side::Local,
                path: taken.display().to_string(),
            });
        }
    }
    let mut dirs: Vec<&Path> = plan.iter().filter_map(|(_, p)| p.parent()).collect();
    dirs.dedup();
    for dir in dirs {
        atomic::remove_stale(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        });
    }
    let keys: Vec<String> = plan.iter().map(|(o, _)| o.key.clone()).collect();
    let total = plan.iter().map(|(o, _)| o.size).sum::<Option<u64>>();
    let _progress = progress::Reporter::start("Pulling", plan.len(), total);
    let results = pool::run(&plan, parallelism, |(object, path)| {
        let mut temp = TempFile::create(path)?;
        let bytes = backend.get(object, temp.file())?;
        temp.commit(path, force, &path.display().to_string(), Side::Local)?;
        progress::file_done();
        Ok(bytes)
    });
    summarize(results, &keys)
}

/// Refuses a plan that would write outside `root` or fight itself: a
/// symlink inside the destination on the way to a file (it could point
/// anywhere), or two objects where one would need the other's name as a
/// directory (`a` and `a/b`).
fn check_destination(root: &Path, plan: &[(RemoteObject, PathBuf)]) -> Result<()> {
    let mut checked: HashSet<PathBuf> = HashSet::new();
    for (_, path) in plan {
        let Ok(below) = path.strip_prefix(root) else {
            continue;
        };
        let mut dir = root.to_path_buf();
        let parents = below.parent().map(|p| p.components().count()).unwrap_or(0);
        for part in below.components().take(parents) {
            dir.push(part);
            if !checked.insert(dir.clone()) {
                continue;
            }
            if fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Error::local_io(
                    "pull into",
                    &dir,
                    std::io::Error::other("it is a symlink, and pulling never writes through a symlink inside the destination; remove it or pull elsewhere"),
                ));
            }
        }
    }
    let mut paths: Vec<&PathBuf> = plan.iter().map(|(_, p)| p).collect();
    paths.sort();
    for pair in paths.windows(2) {
        if pair[1].starts_with(pair[0]) {
            return Err(Error::Protocol(format!(
                "the remote objects for '{}' and '{}' cannot both be pulled: one would have to be a file and a directory at once",
                pair[0].display(),
                pair[1].display()
            )));
        }
    }
    Ok(())
}

/// Deletes everything at `remote`.
pub fn yank(backend: &dyn Backend, remote: &str, parallelism: usize) -> Result<Totals> {
    let objects = backend.list(remote, Intent::Yank)?;
    if objects.is_empty() {
        return Err(Error::NotFound(remote.to_string()));
    }
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    let results = pool::run(&objects, parallelism, |object| {
        backend.delete(object).map(|()| 0)
    });
    summarize(results, &keys)
}

/// Totals of a run, or its first error with what did and did not complete.
fn summarize(results: Vec<Option<Result<u64>>>, keys: &[String]) -> Result<Totals> {
    let total = results.len();
    let mut totals = Totals::default();
    let mut failed = Vec::new();
    let mut first = None;
    for (result, key) in results.into_iter().zip(keys) {
        match result {
            Some(Ok(bytes)) => {
                totals.files += 1;
                totals.bytes += bytes;
            }
            Some(Err(e)) => {
                failed.push(key.clone());
                first.get_or_insert(e);
            }
            None => failed.push(key.clone()),
        }
    }
    match first {
        None => Ok(totals),
        Some(err) if total == 1 => Err(err),
        Some(err) => Err(Error::Partial {
            done: totals.files,
            total,
            failed,
            first: Box::new(err),
        }),
    }
}
