//! What a transfer is asked to do, and what became of it.
//!
//! Each object a run takes on gets a `Slot` that its last request fills
//! (or `skip`, for an object --skip-unchanged found identical); `summarize`
//! turns the slots into the totals of the Go CLI's summary line, or into the
//! first error with the files that did and did not make it.

use std::sync::{Arc, OnceLock};

use super::budget::Budget;
use super::scheduler::Ctx;
use crate::error::{Error, Result};
use crate::{interrupt, log, progress, retry};

/// How a transfer runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Replace what is there (push), or overwrite local files (pull).
    pub force: bool,
    /// Requests in flight: fixed by --parallel, else adaptive.
    pub budget: Budget,
    pub retry: retry::Policy,
    /// With `force`: leave alone what is proven identical (`unchanged`).
    pub skip_unchanged: bool,
}

/// What a finished transfer moved, and what it found already in place.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub files: usize,
    pub bytes: u64,
    pub skipped: usize,
}

/// What became of one object: bytes moved, skipped as unchanged, or why
/// not. Empty when it was never started because an earlier one failed.
pub type Slot = OnceLock<Result<Moved>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Bytes(u64),
    /// Identical on both sides: nothing was sent.
    Skipped,
    /// Not there after all: the placeholder of a push that has not
    /// finished (`absent`).
    Absent,
}

/// Fills `slot`; a failure stops the run from starting anything new.
pub fn finish(ctx: &Ctx<'_, '_, '_>, slot: &Slot, result: Result<u64>) {
    match &result {
        Ok(_) => progress::file_done(),
        Err(_) => ctx.stop(),
    }
    let _ = slot.set(result.map(Moved::Bytes));
}

/// Fills `slot` for the object at `key` (of `size` bytes), found
/// identical: with -v, says so.
pub fn skip(slot: &Slot, key: &str, size: u64) {
    log::debug(|| format!("skipped '{key}': unchanged"));
    progress::skipped(size);
    let _ = slot.set(Ok(Moved::Skipped));
}

/// Fills `slot` for the object at `key`, found to be the placeholder of
/// a push that has not finished: treated as absent, with a warning.
pub fn absent(slot: &Slot, key: &str) {
    log::info(&format!(
        "Warning: '{key}' was not pulled: a push of it has not finished (another push is writing it now, or one died part way; if none is running, yank it or push it again with --force)."
    ));
    let _ = slot.set(Ok(Moved::Absent));
}

/// The end of a pull or a yank: nothing found is not found (unless the
/// listing failed, or a signal stopped it), else the summary.
pub fn conclude(
    remote: &str,
    listed: Result<()>,
    budget: &Budget,
    fed: std::sync::Mutex<Vec<(String, Arc<Slot>)>>,
) -> Result<Totals> {
    log_budget(budget);
    let fed = fed.into_inner().unwrap_or_default();
    let all_absent = fed
        .iter()
        .all(|(_, slot)| matches!(slot.get(), Some(Ok(Moved::Absent))));
    if all_absent {
        listed?;
        interrupt::check()?;
        return Err(Error::NotFound(remote.to_string()));
    }
    summarize(listed, fed)
}

/// With -v: how many requests the budget allowed in flight.
pub fn log_budget(budget: &Budget) {
    log::debug(|| {
        if budget.is_adaptive() {
            format!(
                "requests in flight: settled at {} (highest {}, adaptive up to {})",
                budget.limit(),
                budget.highest(),
                budget.ceiling()
            )
        } else {
            format!("requests in flight: {} (fixed)", budget.limit())
        }
    });
}

/// Totals of a run, or its first error with what did and did not complete.
/// `produced` is what finding the objects came to: a listing that broke off
/// after some files were transferred leaves the total unknown.
pub fn summarize(
    produced: Result<()>,
    outcomes: impl IntoIterator<Item = (String, Arc<Slot>)>,
) -> Result<Totals> {
    let mut totals = Totals::default();
    let mut failed = Vec::new();
    let mut first = None;
    let mut fed = 0;
    for (key, slot) in outcomes {
        fed += 1;
        // Every task has ended, so each slot has one owner left.
        match Arc::into_inner(slot).and_then(OnceLock::into_inner) {
            Some(Ok(Moved::Bytes(bytes))) => {
                totals.files += 1;
                totals.bytes += bytes;
            }
            Some(Ok(Moved::Skipped)) => totals.skipped += 1,
            Some(Ok(Moved::Absent)) => {}
            Some(Err(e)) => {
                failed.push(key);
                first.get_or_insert(e);
            }
            None => failed.push(key),
        }
    }
    let total = if produced.is_ok() { Some(fed) } else { None };
    let first = match (first, produced) {
        (None, Ok(())) if failed.is_empty() => return Ok(totals),
        // A signal stopped the run: that is the reason for what is missing.
        _ if interrupt::received().is_some() => interrupt::check().err(),
        (Some(e), _) | (None, Err(e)) => Some(e),
        (None, Ok(())) => None,
    };
    let first = first.unwrap_or_else(|| Error::Protocol("the transfer stopped early".into()));
    if fed == 1 && total.is_some() {
        return Err(first);
    }
    Err(Error::Partial {
        done: totals.files + totals.skipped,
        total,
        failed,
        first: Box::new(first),
    })
}
