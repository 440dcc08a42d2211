//! One budget for every request in flight: files, parts and ranges alike.
//!
//! Work arrives as tasks, each one request (a PUT, a part, a range GET, a
//! DELETE, a HEAD), in one queue. A task may queue more tasks — a multipart
//! upload's first request queues its parts, a large download's first range
//! queues the others — and those go to the front, so started objects finish
//! first. Worker threads take tasks while fewer than the budget's limit run;
//! threads are started only as the limit and the queue need them, and idle
//! ones beyond the limit end, so threads never exceed the limit by more
//! than a few and there is no pool inside a pool.
//!
//! Every request goes through `Ctx::request`: it is the one place where the
//! engine's requests are retried (`crate::retry`), timed, and reported to
//! the budget. Backends never retry an object operation.
//!
//! After the first failure (`Ctx::stop`) producers feed nothing new; tasks
//! already queued still run, so that they can clean up (a multipart upload
//! whose parts stop is aborted by the last of them), but start no request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::{self, Scope};
use std::time::Instant;

use super::budget::{Budget, Sample};
use crate::error::Result;
use crate::interrupt;
use crate::retry::{self, Policy};

/// Each worker's stack: enough for TLS and the HTTP client, small enough
/// that a hundred waiting workers cost little memory.
const STACK_SIZE: usize = 512 * 1024;
/// Idle threads kept beyond the limit, so a limit that dips and recovers
/// does not start threads again.
const SLACK: usize = 2;

/// One request's worth of work.
pub type Task<'env> = Box<dyn for<'s, 'e> FnOnce(&Ctx<'s, 'e, 'env>) + Send + 'env>;

struct Shared<'env> {
    state: Mutex<State<'env>>,
    wake: Condvar,
    stop: AtomicBool,
    policy: Policy,
}

struct State<'env> {
    queue: VecDeque<Task<'env>>,
    running: usize,
    /// Worker threads started and not ended (the producer's own thread,
    /// which works too once it has produced, is not counted).
    threads: usize,
    waiting: usize,
    producing: bool,
    budget: Budget,
}

/// What a task, or the producer, can do with the scheduler. `'env` is
/// what tasks may borrow; `'s` and `'e` are the thread scope's own.
pub struct Ctx<'s, 'e: 's, 'env: 's> {
    shared: &'s Shared<'env>,
    scope: &'s Scope<'s, 'e>,
}

impl<'s, 'e, 'env> Clone for Ctx<'s, 'e, 'env> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<'s, 'e, 'env> Copy for Ctx<'s, 'e, 'env> {}

/// Runs `produce` on this thread, the tasks it feeds on workers, and then
/// this thread too as a worker until every task is done. Returns what
/// `produce` returned and the budget as it ended.
pub fn run<'env, R>(
    budget: Budget,
    policy: Policy,
    produce: impl for<'s, 'e> FnOnce(&Ctx<'s, 'e, 'env>) -> R,
) -> (R, Budget) {
    let shared = Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            running: 0,
            threads: 0,
            waiting: 0,
            producing: true,
            budget,
        }),
        wake: Condvar::new(),
        stop: AtomicBool::new(false),
        policy,
    };
    let produced = thread::scope(|scope| {
        let ctx = Ctx {
            shared: &shared,
            scope,
        };
        let produced = produce(&ctx);
        ctx.lock().producing = false;
        shared.wake.notify_all();
        ctx.work(false);
        produced
    });
    let state = shared
        .state
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (produced, state.budget)
}

impl<'s, 'e, 'env> Ctx<'s, 'e, 'env> {
    fn lock(&self) -> MutexGuard<'s, State<'env>> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a new piece of work behind everything queued.
    pub fn feed(&self, task: Task<'env>) {
        self.queue(task, false);
    }

    /// Queues work that finishes something already started: it runs
    /// before anything fed.
    pub fn follow_up(&self, task: Task<'env>) {
        self.queue(task, true);
    }

    fn queue(&self, task: Task<'env>, front: bool) {
        let mut state = self.lock();
        if front {
            state.queue.push_front(task);
        } else {
            state.queue.push_back(task);
        }
        self.staff(&mut state);
    }

    /// A failure: nothing new should start.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// After a failure or a signal: nothing new should start.
    pub fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed) || interrupt::received().is_some()
    }

    /// Requests allowed in flight now.
    pub fn limit(&self) -> usize {
        self.lock().budget.limit()
    }

    /// The most requests the budget will ever allow in flight.
    pub fn ceiling(&self) -> usize {
        self.lock().budget.ceiling()
    }

    /// Sends one request through `op`, retried as the policy says, and
    /// tells the budget how it went. `op` gets the attempt number (1…).
    /// `moves` is what an object request moves, for the budget's size
    /// classes; `None` marks a control request (a listing, a HEAD, a
    /// multipart create or complete) whose latency says nothing about how
    /// busy the store is with objects — a Hub's API answers in 5 ms where
    /// its storage takes 20 — so only its throttling counts.
    pub fn request<T>(
        &self,
        what: &str,
        moves: Option<u64>,
        mut op: impl FnMut(usize) -> Result<T>,
    ) -> Result<T> {
        retry::call(&self.shared.policy, what, |attempt| {
            let started = Instant::now();
            let result = op(attempt);
            match (&result, moves) {
                (Ok(_), Some(bytes)) => self.record(Sample::Done {
                    latency: started.elapsed(),
                    bytes,
                    finished: Instant::now(),
                }),
                (Ok(_), None) => {}
                (Err(e), _) if e.is_throttle() => self.record(Sample::Throttled),
                (Err(_), _) => {}
            }
            result
        })
    }

    fn record(&self, sample: Sample) {
        let mut state = self.lock();
        let before = state.budget.limit();
        state.budget.record(sample);
        if state.budget.limit() > before {
            self.staff(&mut state);
        }
    }

    /// Wakes or starts workers for queued tasks the limit allows.
    fn staff(&self, state: &mut State<'env>) {
        let room = state.budget.limit().saturating_sub(state.running);
        let wanted = room.min(state.queue.len());
        if wanted == 0 {
            return;
        }
        for _ in 0..wanted.min(state.waiting) {
            self.shared.wake.notify_one();
        }
        let mut missing = wanted.saturating_sub(state.waiting);
        while missing > 0 && state.threads < state.budget.limit() {
            let ctx = *self;
            let spawned = thread::Builder::new()
                .stack_size(STACK_SIZE)
                .spawn_scoped(self.scope, move || ctx.work(true));
            if spawned.is_err() {
                // Out of threads: the ones running (and the producer's,
                // once it has produced) carry on.
                break;
            }
            state.threads += 1;
            missing -= 1;
        }
    }

    /// A worker's loop: runs tasks until there are none and will be none,
    /// or (`spawned` threads only) there are more threads than the limit.
    fn work(self, spawned: bool) {
        let mut state = self.lock();
        loop {
            if state.running < state.budget.limit() {
                if let Some(task) = state.queue.pop_front() {
                    state.running += 1;
                    drop(state);
                    task(&self);
                    state = self.lock();
                    state.running -= 1;
                    self.staff(&mut state);
                    continue;
                }
            }
            let done = state.queue.is_empty() && state.running == 0 && !state.producing;
            let surplus = spawned && state.threads > state.budget.limit() + SLACK;
            if done || surplus {
                if spawned {
                    state.threads -= 1;
                }
                self.shared.wake.notify_all();
                return;
            }
            state.waiting += 1;
            state = self
                .shared
                .wake
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.waiting -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn policy() -> Policy {
        Policy {
            attempts: 3,
            first_delay: Duration::from_millis(1),
        }
    }

    #[test]
    fn every_task_runs_once_and_follow_ups_too() {
        let done = AtomicUsize::new(0);
        let done = &done;
        let ((), _) = run(Budget::fixed(4), policy(), |ctx| {
            for _ in 0..100 {
                ctx.feed(Box::new(move |ctx| {
                    done.fetch_add(1, Ordering::Relaxed);
                    ctx.follow_up(Box::new(move |_| {
                        done.fetch_add(1, Ordering::Relaxed);
                    }));
                }));
            }
        });
        assert_eq!(done.load(Ordering::Relaxed), 200);
    }

    #[test]
    fn never_more_in_flight_than_the_limit_and_the_limit_is_reached() {
        // Every task waits until three have been in flight at once (or
        // one waited in vain): a scheduler that ran fewer would be found
        // out, and one that ran more would show a higher peak.
        let now = AtomicUsize::new(0);
        let peak = Mutex::new((0, false));
        let reached = Condvar::new();
        let (now, peak, reached) = (&now, &peak, &reached);
        run(Budget::fixed(3), policy(), |ctx| {
            for _ in 0..50 {
                ctx.feed(Box::new(move |_| {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut seen = peak.lock().unwrap();
                    seen.0 = seen.0.max(n);
                    reached.notify_all();
                    let (mut seen, waited) = reached
                        .wait_timeout_while(seen, Duration::from_secs(20), |(p, vain)| {
                            *p < 3 && !*vain
                        })
                        .unwrap();
                    seen.1 |= waited.timed_out();
                    now.fetch_sub(1, Ordering::SeqCst);
                }));
            }
        });
        let (peak, in_vain) = *peak.lock().unwrap();
        assert!(!in_vain, "three were never in flight at once");
        assert!(peak <= 3, "{peak} in flight");
        assert_eq!(peak, 3);
    }

    #[test]
    fn requests_are_retried_and_throttling_shrinks_the_budget() {
        let calls = AtomicUsize::new(0);
        let (out, budget) = run(Budget::adaptive(64), policy(), |ctx| {
            ctx.request("op", Some(0), |_| {
                if calls.fetch_add(1, Ordering::Relaxed) < 2 {
                    Err(Error::Remote {
                        what: "op".into(),
                        status: 503,
                        detail: String::new(),
                        retry_after: None,
                    })
                } else {
                    Ok(7)
                }
            })
        });
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert!(budget.limit() < 4);
    }

    #[test]
    fn control_requests_are_no_samples() {
        // A Hub answers its API in a millisecond; its storage takes 10 ms.
        // Were the API calls samples, every storage request would look
        // like queueing and the budget would shrink. The first sample of
        // an adaptive budget always grows it (slow start), so a budget
        // left as it began took none.
        let initial = Budget::adaptive(64).limit();
        let (_, budget) = run(Budget::adaptive(64), policy(), |ctx| {
            for _ in 0..40 {
                ctx.request("api", None, |_| Ok(())).unwrap();
            }
        });
        assert_eq!(budget.limit(), initial);
        let (_, budget) = run(budget, policy(), |ctx| {
            ctx.request("get", Some(4096), |_| Ok(())).unwrap();
        });
        assert!(budget.limit() > initial, "{}", budget.limit());
    }
}
