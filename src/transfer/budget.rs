//! How many requests may be in flight at once: fixed, or adapted to the store.
//!
//! No fixed number suits every store: a server on the same machine is
//! fastest with a handful of requests in flight (more only queue for its
//! CPU), a store 20 ms away needs a hundred to keep the line busy. So, unless
//! `--parallel` fixes it, the limit starts small and is steered by what the
//! completed requests say, in the manner of TCP Vegas:
//!
//! - latency is compared with the lowest seen for requests of the same size
//!   class (a 4 KiB PUT and an 8 MiB part cannot share one baseline);
//! - while latency stays near that minimum, more in flight means more done:
//!   the limit grows by two per completed request ("slow start": it triples
//!   every round trip, from a few connections, so a server's short listen
//!   queue never sees the whole budget at once);
//! - once a round of requests shows latency well above the minimum, requests
//!   are queueing somewhere: slow start ends. If the round still completed
//!   clearly more requests per second than the last round at half the limit
//!   (or, early on, at any lower limit),
//!   the queueing is worth it (a store far away whose CPU is busy still
//!   gains from more in flight) and the limit holds. Otherwise it shrinks in
//!   proportion (the store's throughput times the minimum latency, plus a
//!   little headroom), by at most half at a time and never below 8 (16 for
//!   a store whose lowest latency is 10 ms or more), then grows
//!   slowly (an eighth a round) while latency stays low or the rate of
//!   completions still rises with it;
//! - a throttling answer (429, 503, S3's SlowDown) halves it at once.
//!
//! Pure logic: the scheduler feeds it samples and reads `limit`.

use std::time::{Duration, Instant};

/// Requests in flight when an adaptive run starts.
const INITIAL: usize = 4;
/// Latency alone never takes the limit below this (throttling can): on a
/// store a few hundred microseconds away, latency ratios are mostly the
/// machine's scheduling noise, and a handful of requests in flight keeps
/// both ends busy.
const FLOOR: usize = 8;
/// The floor for a store at least `FAR` away (its lowest latency for the
/// size class): there each request spends most of its time waiting, not
/// working, so a few more in flight overlap the waits even while the store's
/// CPU queues them, and 8 leaves it idle (100 × 1 MiB from a store 20 ms
/// away: 0.92 s at 8 in flight, 0.76 s at 16, 0.75 s at 32).
const FAR_FLOOR: usize = 16;
/// A size class's lowest latency, in seconds, from which a store is far.
const FAR: f64 = 0.010;
/// Latency up to this multiple of the minimum counts as "not queueing".
const NEAR_MIN: f64 = 1.5;
/// A round whose median latency is above this multiple of the minimum is
/// queueing at the store.
const QUEUEING: f64 = 2.0;
/// Size classes: up to 64 KiB, then each four times the last.
const CLASSES: usize = 7;
/// A queueing round holds the limit if it completed at least this many
/// times the requests per second of the last round at half the limit.
const RISING: f64 = 1.15;
/// What each completion near the minimum latency adds to the limit in slow
/// start: two, so the limit triples every round trip (from 4 to 128 in four
/// round trips, not six: on a store 20 ms away, each round trip of the ramp
/// is time spent with the line half idle).
const SLOW_START_STEP: f64 = 2.0;
/// How many past rounds' rates are kept to compare with.
const HISTORY: usize = 64;

/// What one finished request tells the budget.
#[derive(Debug, Clone, Copy)]
pub enum Sample {
    /// It completed at `finished`, `latency` after it was sent, moving
    /// `bytes`.
    Done {
        latency: Duration,
        bytes: u64,
        finished: Instant,
    },
    /// The store asked us to slow down (429, 503, SlowDown).
    Throttled,
}

#[derive(Debug, Clone)]
pub struct Budget {
    limit: f64,
    ceiling: usize,
    adaptive: bool,
    slow_start: bool,
    /// The lowest latency seen per size class, in seconds.
    min: [f64; CLASSES],
    /// Latency ratios of the current round, how many it takes (the limit
    /// when it started), and when it started.
    round: Vec<f64>,
    round_len: usize,
    round_started: Option<Instant>,
    /// The latest rounds' limits and requests completed per second.
    rates: std::collections::VecDeque<(usize, f64)>,
    /// Samples to let pass before a throttle may cut the limit again.
    calm: usize,
    /// Whether the store ever asked us to slow down.
    throttled: bool,
    highest: usize,
}

impl Budget {
    /// `--parallel N`: exactly `n` in flight, whatever happens.
    pub fn fixed(n: usize) -> Budget {
        Budget::new(n.max(1), n.max(1), false)
    }

    /// Between 1 and `ceiling` in flight, steered by the samples.
    pub fn adaptive(ceiling: usize) -> Budget {
        let ceiling = ceiling.max(1);
        Budget::new(INITIAL.min(ceiling), ceiling, true)
    }

    fn new(start: usize, ceiling: usize, adaptive: bool) -> Budget {
        Budget {
            limit: start as f64,
            ceiling,
            adaptive,
            slow_start: true,
            min: [f64::INFINITY; CLASSES],
            round: Vec::new(),
            round_len: 0,
            round_started: None,
            rates: Default::default(),
            calm: 0,
            throttled: false,
            highest: start,
        }
    }

    /// Requests that may be in flight now.
    pub fn limit(&self) -> usize {
        (self.limit as usize).clamp(1, self.ceiling)
    }

    /// The most ever allowed: what threads and connections are sized for.
    pub fn ceiling(&self) -> usize {
        self.ceiling
    }

    /// The highest limit reached so far.
    pub fn highest(&self) -> usize {
        self.highest
    }

    pub fn is_adaptive(&self) -> bool {
        self.adaptive
    }

    pub fn record(&mut self, sample: Sample) {
        if !self.adaptive {
            return;
        }
        self.calm = self.calm.saturating_sub(1);
        match sample {
            Sample::Throttled => self.throttled(),
            Sample::Done {
                latency,
                bytes,
                finished,
            } => self.done(latency.as_secs_f64(), bytes, finished),
        }
        self.highest = self.highest.max(self.limit());
    }

    fn throttled(&mut self) {
        self.slow_start = false;
        self.throttled = true;
        self.round.clear();
        if self.calm == 0 {
            self.limit = (self.limit / 2.0).max(1.0);
            // One cut per round trip's worth of answers: the requests
            // already in flight were sent before the cut.
            self.calm = self.limit() * 2;
        }
    }

    fn done(&mut self, latency: f64, bytes: u64, finished: Instant) {
        let started = *self.round_started.get_or_insert(finished);
        let class = size_class(bytes);
        let min = &mut self.min[class];
        if latency < *min {
            *min = latency.max(1e-6);
        }
        let ratio = latency / *min;
        let min_latency = *min;
        if self.slow_start && ratio <= NEAR_MIN {
            self.limit = (self.limit + SLOW_START_STEP).min(self.ceiling as f64);
        }
        if self.round.is_empty() {
            self.round_len = self.limit().max(8);
        }
        self.round.push(ratio);
        if self.round.len() < self.round_len {
            return;
        }
        let median = median(&mut self.round);
        let elapsed = finished.duration_since(started).as_secs_f64();
        let rate = (elapsed > 0.0).then(|| self.round.len() as f64 / elapsed);
        self.round.clear();
        self.round_started = Some(finished);
        let limit = self.limit();
        // Against the latest round at half the limit or less, else (when
        // slow start outran the rounds) the latest at any lower limit.
        let half = (self.rates.iter().rev().find(|(l, _)| l * 2 <= limit))
            .or_else(|| self.rates.iter().rev().find(|(l, _)| *l < limit));
        let rising = matches!((rate, half), (Some(now), Some((_, then))) if now >= then * RISING);
        if let Some(rate) = rate {
            if self.rates.len() == HISTORY {
                self.rates.pop_front();
            }
            self.rates.push_back((limit, rate));
        }
        if median > QUEUEING {
            self.slow_start = false;
            if rising {
                return;
            }
            // Requests wait and more in flight no longer buys more done:
            // keep what the store completes in one minimum latency, plus
            // room for a few more.
            let fitting = self.limit / median;
            let floor = if min_latency >= FAR { FAR_FLOOR } else { FLOOR } as f64;
            // Only throttling takes the limit below the floor; a slow start
            // that ended below it (on the first requests' latencies) is
            // raised to it.
            let floor = if self.throttled {
                self.limit.min(floor)
            } else {
                floor
            };
            let lowest = floor.max(self.limit / 2.0);
            self.limit = (fitting + fitting.sqrt().max(2.0)).clamp(lowest, self.limit.max(lowest));
        } else if (!self.slow_start && median <= NEAR_MIN) || (median > NEAR_MIN && rising) {
            // Latency is low again, or rising but still paying off: grow
            // by an eighth a round.
            self.limit = (self.limit + (self.limit / 8.0).max(1.0)).min(self.ceiling as f64);
        }
    }
}

/// 0 up to 64 KiB, then one class per factor of four.
fn size_class(bytes: u64) -> usize {
    let mut class = 0;
    let mut bound = 64 * 1024u64;
    while bytes > bound && class < CLASSES - 1 {
        class += 1;
        bound = bound.saturating_mul(4);
    }
    class
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    values[values.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a budget against a model store: `serve(in_flight)` is the
    /// latency each request sees with that many in flight. Returns the
    /// limit after `rounds` round trips.
    /// Every round trip's requests finish together, one latency after the
    /// last round's.
    fn settle(budget: &mut Budget, rounds: usize, serve: impl Fn(usize) -> f64) -> usize {
        let mut clock = Instant::now();
        for _ in 0..rounds {
            let n = budget.limit();
            let latency = Duration::from_secs_f64(serve(n));
            clock += latency;
            for _ in 0..n {
                budget.record(Sample::Done {
                    latency,
                    bytes: 4096,
                    finished: clock,
                });
            }
        }
        budget.limit()
    }

    #[test]
    fn fixed_never_moves() {
        let mut b = Budget::fixed(8);
        b.record(Sample::Throttled);
        assert_eq!(settle(&mut b, 50, |_| 0.02), 8);
    }

    #[test]
    fn starts_small_and_grows_to_the_ceiling_against_a_distant_store() {
        let mut b = Budget::adaptive(128);
        assert_eq!(b.limit(), INITIAL);
        // 20 ms whatever the load: more in flight is always better.
        assert_eq!(settle(&mut b, 6, |_| 0.020), 128);
    }

    #[test]
    fn never_opens_the_whole_budget_at_once() {
        let mut b = Budget::adaptive(128);
        let mut last = b.limit();
        for _ in 0..10 {
            let next = settle(&mut b, 1, |_| 0.020);
            assert!(next <= last * 3, "{last} -> {next}");
            last = next;
        }
    }

    #[test]
    fn settles_near_the_knee_of_a_store_that_saturates() {
        // A server that completes 1000 requests/s at most, with 1 ms of
        // latency alone: beyond one in flight, requests queue.
        let mut b = Budget::adaptive(128);
        let limit = settle(&mut b, 40, |n| (n as f64 / 1000.0).max(0.001) + 0.001);
        assert_eq!(limit, FLOOR, "latency alone goes no lower");
        // A server that keeps 16 busy before it queues.
        let mut b = Budget::adaptive(128);
        let limit = settle(&mut b, 40, |n| 0.016f64.max(n as f64 / 1000.0));
        assert!((12..=40).contains(&limit), "{limit}");
    }

    #[test]
    fn a_far_store_keeps_sixteen_in_flight_unless_it_throttles() {
        // 20 ms away, and every request in flight adds 10 ms: latency is
        // twice the minimum (at 4) by 10 in flight, and 16 complete only
        // a tenth more than 8.
        let far = |n: usize| 0.020 + n as f64 * 0.010;
        let mut b = Budget::adaptive(128);
        assert_eq!(settle(&mut b, 40, far), FAR_FLOOR);
        // A store close by that queues early goes down to the near floor.
        let mut b = Budget::adaptive(128);
        assert_eq!(settle(&mut b, 40, |n| 0.001 + n as f64 * 0.001), FLOOR);
        // Throttling goes below it, and a round of slow answers after that
        // does not raise it back to the floor.
        let mut b = Budget::adaptive(128);
        settle(&mut b, 40, far);
        for _ in 0..100 {
            b.record(Sample::Throttled);
        }
        let throttled = b.limit();
        assert!(throttled < FAR_FLOOR, "{throttled}");
        let slow = |n: usize| if n < FAR_FLOOR { 1.0 } else { far(n) };
        assert!(settle(&mut b, 8, slow) <= throttled);
    }

    #[test]
    fn holds_while_more_in_flight_still_completes_more() {
        // 20 ms away, and the store's CPU queues requests beyond a few
        // thousand a second: latency doubles by 128 in flight, but 128 still
        // complete 44 % more a second than 64 (Vegas alone would stop at 64).
        let mut b = Budget::adaptive(128);
        let limit = settle(&mut b, 60, |n| 0.020 + n as f64 / 5000.0);
        assert!(limit >= 100, "{limit}");
    }

    #[test]
    fn throttling_halves_once_per_round() {
        let mut b = Budget::adaptive(128);
        settle(&mut b, 6, |_| 0.020);
        assert_eq!(b.limit(), 128);
        for _ in 0..10 {
            b.record(Sample::Throttled);
        }
        assert_eq!(b.limit(), 64);
        for _ in 0..200 {
            b.record(Sample::Throttled);
        }
        assert!(b.limit() < 64);
        assert!(b.limit() >= 1);
    }

    #[test]
    fn large_and_small_requests_keep_separate_baselines() {
        let mut b = Budget::adaptive(128);
        let mut clock = Instant::now();
        // Small files at 1 ms, 8 MiB parts at 80 ms, both unloaded.
        for _ in 0..20 {
            clock += Duration::from_millis(80);
            let n = b.limit();
            for i in 0..n {
                let (latency, bytes) = if i % 2 == 0 {
                    (0.001, 4096)
                } else {
                    (0.080, 8 << 20)
                };
                b.record(Sample::Done {
                    latency: Duration::from_secs_f64(latency),
                    bytes,
                    finished: clock,
                });
            }
        }
        assert_eq!(b.limit(), 128);
    }

    #[test]
    fn size_classes() {
        assert_eq!(size_class(0), 0);
        assert_eq!(size_class(64 * 1024), 0);
        assert_eq!(size_class(64 * 1024 + 1), 1);
        assert_eq!(size_class(1 << 20), 2);
        assert_eq!(size_class(u64::MAX), CLASSES - 1);
    }
}
