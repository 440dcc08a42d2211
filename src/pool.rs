//! Runs the same job over many items on a bounded set of threads.
//!
//! Transfers of small files are bound by round trips, so many requests must
//! be in flight at once. Items come either from a slice (`run`) or from a
//! producer that is still finding them (`stream`: list pages feeding
//! downloads while the listing goes on). Scoped worker threads take the next
//! item from a queue; results come back in item order. After the first
//! failure no new item is started, so a broken store fails a push in one
//! round trip, not after every file has tried and failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;

use crate::error::Result;

/// Each worker's stack: enough for TLS and the HTTP client, small enough
/// that hundreds of waiting workers cost little memory.
const STACK_SIZE: usize = 512 * 1024;

/// An item and what became of it: its result, or `None` when it was not
/// started because an earlier item failed.
pub type Outcome<T, R> = (T, Option<Result<R>>);

/// `work` applied to every item, by up to `threads` threads. An item that was
/// not started because an earlier one failed is `None`.
pub fn run<T, R, F>(items: &[T], threads: usize, work: F) -> Vec<Option<Result<R>>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Result<R> + Sync,
{
    let produce = |feed: &mut dyn FnMut(usize) -> bool| {
        for i in 0..items.len() {
            if !feed(i) {
                break;
            }
        }
        Ok(())
    };
    let (_, fed) = stream(threads, produce, |&i| work(&items[i]));
    let mut results: Vec<Option<Result<R>>> = (0..items.len()).map(|_| None).collect();
    for (i, outcome) in fed {
        results[i] = outcome;
    }
    results
}

/// `work` applied to every item that `produce` hands to its feed, by up to
/// `threads` threads that start while `produce` is still running. The feed
/// answers `false` once an item has failed: the producer should stop then.
/// Returns what `produce` returned and every item fed, in feed order.
pub fn stream<T, R, P, F>(threads: usize, produce: P, work: F) -> (Result<()>, Vec<Outcome<T, R>>)
where
    T: Send,
    R: Send,
    P: FnOnce(&mut dyn FnMut(T) -> bool) -> Result<()>,
    F: Fn(&T) -> Result<R> + Sync,
{
    let failed = AtomicBool::new(false);
    let finished: Mutex<Vec<(usize, T, Result<R>)>> = Mutex::new(Vec::new());
    let finish = |i: usize, item: T| {
        let result = work(&item);
        if result.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        if let Ok(mut done) = finished.lock() {
            done.push((i, item, result));
        }
    };
    let (send, receive) = mpsc::channel::<(usize, T)>();
    let queue = Mutex::new(receive);
    let worker = || loop {
        if failed.load(Ordering::Relaxed) {
            break;
        }
        let next = match queue.lock() {
            Ok(receive) => receive.recv(),
            Err(_) => break,
        };
        let Ok((i, item)) = next else { break };
        finish(i, item);
    };
    let produced = thread::scope(|scope| {
        // One more worker for each item fed, up to `threads`: a pull of one
        // file starts one thread, not a pool.
        let mut spawned = 0;
        let mut out_of_threads = false;
        let mut count = 0;
        let mut feed = |item: T| {
            if failed.load(Ordering::Relaxed) {
                return false;
            }
            if spawned < threads.max(1) && !out_of_threads {
                let spawn = thread::Builder::new()
                    .stack_size(STACK_SIZE)
                    .spawn_scoped(scope, worker);
                match spawn {
                    Ok(_) => spawned += 1,
                    // The system is out of threads: work with what we have.
                    Err(_) => out_of_threads = true,
                }
            }
            if spawned == 0 {
                finish(count, item);
            } else if let Err(mpsc::SendError((i, item))) = send.send((count, item)) {
                finish(i, item); // Every worker is gone: do it here.
            }
            count += 1;
            true
        };
        let produced = produce(&mut feed);
        drop(send); // The workers end once the queue is empty.
        produced
    });
    let mut outcomes: Vec<(usize, T, Option<Result<R>>)> = finished
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .map(|(i, item, result)| (i, item, Some(result)))
        .collect();
    let queue = queue
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    outcomes.extend(queue.try_iter().map(|(i, item)| (i, item, None)));
    outcomes.sort_unstable_by_key(|(i, _, _)| *i);
    let fed = outcomes
        .into_iter()
        .map(|(_, item, outcome)| (item, outcome))
        .collect();
    (produced, fed)
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

    #[test]
    fn work_starts_while_the_producer_is_still_producing() {
        // The producer waits for the first item to be done before it feeds
        // the second: it deadlocks unless workers run alongside it.
        let (done, seen) = mpsc::channel();
        let done = Mutex::new(done);
        let (produced, fed) = stream(
            4,
            |feed| {
                feed(1);
                seen.recv()
                    .map_err(|_| Error::Protocol("no worker".into()))?;
                feed(2);
                Ok(())
            },
            |&i: &u32| {
                done.lock().unwrap().send(i).unwrap();
                Ok(i * 10)
            },
        );
        assert!(produced.is_ok());
        let got: Vec<(u32, u32)> = fed
            .into_iter()
            .map(|(i, r)| (i, r.unwrap().unwrap()))
            .collect();
        assert_eq!(got, vec![(1, 10), (2, 20)]);
    }

    #[test]
    fn the_feed_refuses_after_a_failure_and_keeps_the_producer_error() {
        let (produced, fed) = stream(
            1,
            |feed| {
                let mut refused = false;
                for i in 0..10_000u32 {
                    if !feed(i) {
                        refused = true;
                        break;
                    }
                    if i == 0 {
                        // Let the single worker fail on item 0 first.
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                }
                assert!(refused);
                Err(Error::Protocol("listing broke".into()))
            },
            |&i| {
                if i == 0 {
                    Err(Error::NotFound("x".into()))
                } else {
                    Ok(i)
                }
            },
        );
        assert!(matches!(produced, Err(Error::Protocol(_))));
        assert!(fed[0].1.as_ref().unwrap().is_err());
        assert!(fed.len() < 10_000);
    }
}
