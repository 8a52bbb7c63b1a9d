//! How far ahead a producer claims: as many jobs as its handlers can start
//! within a short horizon, whatever the queue's concurrency.
//!
//! The rule: hold `ahead = rate × horizon` jobs beyond the free slots, where
//! `rate` is how fast this producer has been starting jobs (an average over
//! windows of [`WINDOW`]) and `horizon` is two claim round trips (one claim
//! in flight while the buffer drains), at least [`MIN_HORIZON`]. It is
//! bounded by `claim_batch`, and so that a buffered job waits at most half
//! of what it may wait without a fresh lease (`fresh_start / 2` at the
//! measured rate), and raised to `prefetch_min`. Fast jobs thus get big
//! batches (a few round trips of work), slow jobs next to none beyond the
//! free slots: a node does not hoard work another node could start. A
//! buffered job that waits longer anyway still gets a fresh lease or goes
//! back (see `producer`).

use std::time::Duration;

use tokio::time::Instant;

/// Starts are counted over windows this long before they update the rate.
pub(crate) const WINDOW: Duration = Duration::from_millis(20);
/// The shortest horizon, whatever the measured round trip.
pub(crate) const MIN_HORIZON: Duration = Duration::from_millis(5);

/// The measured rate and round trip of one producer, and the bounds.
#[derive(Debug)]
pub(crate) struct Prefetch {
    /// Jobs started per second (moving average; 0 until measured).
    rate: f64,
    /// Claim round trip (moving average).
    rtt: Duration,
    window_start: Instant,
    window_starts: u64,
    /// At least this many ahead.
    min: usize,
    /// At most this many ahead (`claim_batch`).
    max: usize,
    /// A buffered job should start within this long of its claim.
    max_wait: Duration,
}

impl Prefetch {
    pub(crate) fn new(min: usize, max: usize, max_wait: Duration, now: Instant) -> Self {
        Prefetch {
            rate: 0.0,
            rtt: Duration::ZERO,
            window_start: now,
            window_starts: 0,
            min: min.min(max),
            max,
            max_wait,
        }
    }

    /// `n` jobs started at `now`.
    pub(crate) fn started(&mut self, n: usize, now: Instant) {
        self.fold(now);
        self.window_starts += n as u64;
    }

    /// A claim answered after `rtt`.
    pub(crate) fn claimed(&mut self, rtt: Duration) {
        self.rtt = if self.rtt.is_zero() {
            rtt
        } else {
            (self.rtt + rtt) / 2
        };
    }

    /// Close the windows that ended by `now` into the rate.
    fn fold(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        let current = self.window_starts as f64 / elapsed.as_secs_f64();
        self.rate = if self.rate == 0.0 {
            current
        } else {
            (self.rate + current) / 2.0
        };
        self.window_start = now;
        self.window_starts = 0;
    }

    /// Jobs to hold beyond the free slots, as of `now`.
    pub(crate) fn ahead(&mut self, now: Instant) -> usize {
        self.fold(now);
        let horizon = (self.rtt * 2).max(MIN_HORIZON);
        let by_rate = (self.rate * horizon.as_secs_f64()).ceil() as usize;
        let by_lease = (self.rate * self.max_wait.as_secs_f64()).floor() as usize;
        by_rate.min(by_lease).min(self.max).max(self.min)
    }

    /// The measured rate, jobs per second.
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn nothing_is_held_ahead_until_a_rate_is_measured() {
        let t = Instant::now();
        let mut p = Prefetch::new(0, 500, Duration::from_secs(6), t);
        assert_eq!(p.ahead(t), 0);
        let mut p = Prefetch::new(3, 500, Duration::from_secs(6), t);
        assert_eq!(p.ahead(t), 3, "prefetch_min holds anyway");
    }

    #[test]
    fn fast_jobs_get_rate_times_two_round_trips_up_to_the_batch() {
        let t = Instant::now();
        let mut p = Prefetch::new(0, 500, Duration::from_secs(6), t);
        // 20,000 jobs/s: 400 in a 20 ms window; claims take 2 ms.
        p.started(400, at(t, 1));
        p.claimed(Duration::from_millis(2));
        assert_eq!(
            p.ahead(at(t, 20)),
            100,
            "20,000/s × 5 ms, the shortest horizon"
        );
        p.claimed(Duration::from_millis(30));
        // rtt now (2 + 30) / 2 = 16 ms: 32 ms of work is 640, cut to the batch.
        assert_eq!(p.ahead(at(t, 20)), 500);
    }

    #[test]
    fn slow_jobs_are_not_hoarded() {
        let t = Instant::now();
        let mut p = Prefetch::new(0, 500, Duration::from_secs(6), t);
        // 5 jobs/s: 1 start in 200 ms.
        p.started(1, at(t, 1));
        p.claimed(Duration::from_millis(2));
        assert!((p.ahead(at(t, 200)) as f64) <= 1.0, "{}", p.rate());
    }

    #[test]
    fn a_buffered_job_never_waits_past_the_lease_bound() {
        let t = Instant::now();
        // A huge round trip would ask for 1,000 × 2 s; the lease bound of
        // 100 ms at 1,000/s allows 100.
        let mut p = Prefetch::new(0, 10_000, Duration::from_millis(100), t);
        p.started(20, at(t, 1));
        p.claimed(Duration::from_secs(1));
        assert_eq!(p.ahead(at(t, 20)), 100);
    }

    #[test]
    fn an_idle_producer_forgets_its_rate() {
        let t = Instant::now();
        let mut p = Prefetch::new(0, 500, Duration::from_secs(6), t);
        p.started(400, at(t, 1));
        p.claimed(Duration::from_millis(2));
        let busy = p.ahead(at(t, 20));
        let idle = p.ahead(at(t, 2_000));
        assert!(idle < busy, "{idle} < {busy}");
    }
}
