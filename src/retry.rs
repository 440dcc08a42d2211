//! One retry loop for every request the program makes.
//!
//! Storage and Hubs throttle and drop connections; a CI job should ride that
//! out, not fail. What `Error::is_retryable` says may succeed again
//! (connection errors, timeouts, 429 and 5xx other than 501) is tried again,
//! up to `attempts` in all, waiting `first_delay`, then twice that, and so
//! on (with jitter, at most 10 s), or as long as a `Retry-After` header
//! asked, in seconds or as a date (at most 60 s). Anything else is final at
//! once. The transfer engine sends every request of a transfer through here
//! by way of `transfer::scheduler`, which also tells the budget how each
//! went, so backends never retry an object operation; the credential
//! endpoints and the S3 bucket-region lookup call it directly, with short
//! policies of their own. This is the only place a request waits before it
//! is tried again.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::{interrupt, log};

const MAX_BACKOFF: Duration = Duration::from_secs(10);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How often, and how patiently, a request is tried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Attempts in all, the first included (ARTIFACT_RETRY_ATTEMPTS).
    pub attempts: usize,
    /// The first backoff; it doubles (ARTIFACT_RETRY_DELAY).
    pub first_delay: Duration,
}

/// Runs `op` (given the attempt number, from 1) until it succeeds, fails
/// for good, or the attempts run out. `what` names it in `-v` lines.
pub fn call<T>(policy: &Policy, what: &str, mut op: impl FnMut(usize) -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match op(attempt) {
            Ok(value) => return Ok(value),
            Err(err)
                if err.is_retryable()
                    && attempt < policy.attempts
                    && interrupt::received().is_none() =>
            {
                let wait = delay(policy.first_delay, attempt, err.retry_after());
                let asked = err.retry_after().map(|a| a.min(MAX_RETRY_AFTER)) == Some(wait);
                log::debug(|| {
                    format!(
                        "{what}: {err}; retrying in {:.1} s{} (attempt {} of {})",
                        wait.as_secs_f64(),
                        if asked {
                            ", as its Retry-After asked"
                        } else {
                            ""
                        },
                        attempt + 1,
                        policy.attempts
                    )
                });
                pause(wait);
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Sleeps `wait`, in short steps so that a signal cuts it short.
fn pause(wait: Duration) {
    let until = std::time::Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || interrupt::received().is_some() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// The wait before attempt `attempt + 1`: exponential from `base` with ±25 %
/// jitter, capped, and never shorter than a server's `Retry-After`.
fn delay(base: Duration, attempt: usize, retry_after: Option<Duration>) -> Duration {
    let exp = base
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(MAX_BACKOFF);
    let jitter = 0.75 + 0.5 * random_unit();
    let backoff = exp.mul_f64(jitter);
    match retry_after {
        Some(asked) => backoff.max(asked.min(MAX_RETRY_AFTER)),
        None => backoff,
    }
}

/// A number in [0, 1): a per-thread xorshift seeded from the clock, enough
/// to keep parallel workers from retrying in lockstep.
fn random_unit() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
            let tid = &nanos as *const u64 as u64;
            (nanos ^ tid.rotate_left(32) ^ u64::from(std::process::id())) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn policy(attempts: usize) -> Policy {
        Policy {
            attempts,
            first_delay: Duration::from_millis(1),
        }
    }

    fn unavailable() -> Error {
        Error::Remote {
            what: "GET x".into(),
            status: 503,
            detail: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn retries_until_success() {
        let mut calls = 0;
        let out = call(&policy(5), "op", |_| {
            calls += 1;
            if calls < 3 {
                Err(unavailable())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(out.unwrap(), 3);
    }

    #[test]
    fn gives_up_after_the_attempts() {
        let mut calls = 0;
        let out: Result<()> = call(&policy(5), "op", |_| {
            calls += 1;
            Err(unavailable())
        });
        assert!(out.is_err());
        assert_eq!(calls, 5);
    }

    #[test]
    fn final_errors_are_not_retried() {
        let mut calls = 0;
        let out: Result<()> = call(&policy(5), "op", |_| {
            calls += 1;
            Err(Error::NotFound("x".into()))
        });
        assert!(out.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let base = Duration::from_millis(500);
        for attempt in 1..=4 {
            let d = delay(base, attempt, None);
            let exp = base * (1 << (attempt - 1));
            assert!(
                d >= exp.mul_f64(0.75) && d <= exp.mul_f64(1.25),
                "{attempt}: {d:?}"
            );
        }
        assert!(delay(base, 30, None) <= MAX_BACKOFF.mul_f64(1.25));
        assert!(delay(base, 1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert_eq!(
            delay(base, 1, Some(Duration::from_secs(3600))),
            MAX_RETRY_AFTER
        );
        // `http` reads a delta-seconds past u64 as u64::MAX seconds.
        assert_eq!(
            delay(base, 1, Some(Duration::from_secs(u64::MAX))),
            MAX_RETRY_AFTER
        );
    }
}
