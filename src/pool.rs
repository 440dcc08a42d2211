//! Runs the same job over many items on a bounded set of threads.
//!
//! Transfers of small files are bound by round trips, so many requests must
//! be in flight at once. Scoped threads take the next item from a shared
//! counter; results come back in item order. After the first failure no new
//! item is started, so a broken store fails a push in one round trip, not
//! after every file has tried and failed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

use crate::error::Result;

/// Each worker's stack: enough for TLS and the HTTP client, small enough
/// that hundreds of waiting workers cost little memory.
const STACK_SIZE: usize = 512 * 1024;

/// `work` applied to every item, by up to `threads` threads. An item that was
/// not started because an earlier one failed is `None`.
pub fn run<T, R, F>(items: &[T], threads: usize, work: F) -> Vec<Option<Result<R>>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Result<R> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    let worker = || loop {
        if failed.load(Ordering::Relaxed) {
            break;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else { break };
        let result = work(item);
        if result.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        if let Ok(mut slots) = results.lock() {
            slots[i] = Some(result);
        }
    };
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        worker();
    } else {
        thread::scope(|scope| {
            let mut spawned = 0;
            for _ in 0..threads {
                let spawn = thread::Builder::new()
                    .stack_size(STACK_SIZE)
                    .spawn_scoped(scope, worker);
                if spawn.is_err() {
                    break; // The system is out of threads: work with what we have.
                }
                spawned += 1;
            }
            if spawned == 0 {
                worker();
            }
        });
    }
    results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every result, in order, or the first error among them.
pub fn all<R>(results: Vec<Option<Result<R>>>) -> Result<Vec<R>> {
    let mut out = Vec::with_capacity(results.len());
    let mut skipped = false;
    for result in results {
        match result {
            Some(Ok(value)) => out.push(value),
            Some(Err(e)) => return Err(e),
            None => skipped = true,
        }
    }
    if skipped {
        // Items are skipped only after a failure, which was returned above.
        return Err(crate::error::Error::Protocol(
            "work stopped before every item ran".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn every_item_once_in_order() {
        let items: Vec<usize> = (0..500).collect();
        let out = run(&items, 16, |&i| Ok(i * 2));
        let values: Vec<usize> = out.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert_eq!(values, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn stops_starting_items_after_a_failure() {
        let items: Vec<usize> = (0..1000).collect();
        let out = run(&items, 1, |&i| {
            if i == 3 {
                Err(Error::NotFound("x".into()))
            } else {
                Ok(i)
            }
        });
        assert!(out[3].as_ref().unwrap().is_err());
        assert!(out[4..].iter().all(Option::is_none));
    }

    #[test]
    fn empty_input() {
        let items: Vec<u8> = Vec::new();
        assert!(run(&items, 8, |_| Ok(())).is_empty());
    }
}
