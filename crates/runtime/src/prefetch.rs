//! How far ahead a producer claims: as many jobs as its handlers could start
//! within a short horizon, whatever the queue's concurrency.
//!
//! The rule: hold `ahead = capacity × horizon` jobs beyond the free slots.
//! `capacity` is how many jobs per second this producer's slots can take —
//! its concurrency divided by how long a job holds a slot (from its start
//! to the hand-over of its finish; a moving average) — and `horizon` is two
//! claim round trips (one claim in flight while the buffer drains), at least
//! [`MIN_HORIZON`]. It is bounded by `claim_batch`, and so that a buffered
//! job waits at most half of what it may wait without a fresh lease
//! (`fresh_start / 2` at that capacity), and raised to `prefetch_min`.
//!
//! Capacity, not the rate jobs were started at: the start rate is bounded
//! by how fast jobs arrive or are claimed, so under a burst or a backlog it
//! says nothing of how many more the handlers could take, and a rule built
//! on it claims in small steps exactly when big ones are needed. Fast jobs
//! thus get big batches (a few round trips of work), slow jobs next to none
//! beyond the free slots: a node does not hoard work another node could
//! start. A buffered job that waits longer anyway still gets a fresh lease
//! or goes back (see `producer`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// The shortest horizon, whatever the measured round trip.
pub(crate) const MIN_HORIZON: Duration = Duration::from_millis(5);

/// The measured slot hold time and claim round trip of one producer, and
/// the bounds.
#[derive(Debug)]
pub(crate) struct Prefetch {
    /// The producer's slots (its concurrency).
    slots: usize,
    /// How long a job holds a slot (moving average; `None` until measured).
    hold: Option<Duration>,
    /// Slot hold times reported by the jobs since the last look.
    holds: Arc<Holds>,
    /// Claim round trip (moving average).
    rtt: Duration,
    /// At least this many ahead.
    min: usize,
    /// At most this many ahead (`claim_batch`).
    max: usize,
    /// A buffered job should start within this long of its claim.
    max_wait: Duration,
}

/// Slot hold times, summed by the jobs as they release their slots.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    nanos: AtomicU64,
    count: AtomicU64,
}

/// One job's slot: released, and its hold time counted, when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    since: Instant,
    holds: Arc<Holds>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.holds.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.holds.count.fetch_add(1, Ordering::Relaxed);
    }
}

impl Prefetch {
    pub(crate) fn new(slots: usize, min: usize, max: usize, max_wait: Duration) -> Self {
        Prefetch {
            slots,
            hold: None,
            holds: Arc::new(Holds::default()),
            rtt: Duration::ZERO,
            min: min.min(max),
            max,
            max_wait,
        }
    }

    /// A slot for a job starting now, holding `permit`.
    pub(crate) fn slot(&self, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            _permit: permit,
            since: Instant::now(),
            holds: self.holds.clone(),
        }
    }

    /// A claim answered after `rtt`.
    pub(crate) fn claimed(&mut self, rtt: Duration) {
        self.rtt = if self.rtt.is_zero() {
            rtt
        } else {
            (self.rtt + rtt) / 2
        };
    }

    /// Fold the hold times reported since the last look into the average.
    fn fold(&mut self) {
        let count = self.holds.count.swap(0, Ordering::Relaxed);
        let nanos = self.holds.nanos.swap(0, Ordering::Relaxed);
        if count == 0 {
            return;
        }
        let current = Duration::from_nanos(nanos / count);
        self.hold = Some(match self.hold {
            None => current,
            Some(h) => (h + current) / 2,
        });
    }

    /// Jobs per second the slots can take; 0 until a hold time is measured.
    pub(crate) fn capacity(&mut self) -> f64 {
        self.fold();
        match self.hold {
            // A hold too short to measure is as fast as anything here.
            Some(h) => self.slots as f64 / h.as_secs_f64().max(1e-7),
            None => 0.0,
        }
    }

    /// Jobs to hold beyond the free slots.
    pub(crate) fn ahead(&mut self) -> usize {
        let capacity = self.capacity();
        let horizon = (self.rtt * 2).max(MIN_HORIZON);
        let by_capacity = capacity * horizon.as_secs_f64();
        let by_lease = capacity * self.max_wait.as_secs_f64();
        let ahead = by_capacity.min(by_lease).min(self.max as f64).floor() as usize;
        ahead.max(self.min)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    /// `n` jobs that held a slot for `each`.
    fn held(p: &Prefetch, n: u64, each: Duration) {
        p.holds
            .nanos
            .fetch_add(n * each.as_nanos() as u64, Ordering::Relaxed);
        p.holds.count.fetch_add(n, Ordering::Relaxed);
    }

    #[test]
    fn nothing_is_held_ahead_until_a_hold_time_is_measured() {
        let mut p = Prefetch::new(8, 0, 500, Duration::from_secs(6));
        assert_eq!(p.ahead(), 0);
        let mut p = Prefetch::new(8, 3, 500, Duration::from_secs(6));
        assert_eq!(p.ahead(), 3, "prefetch_min holds anyway");
    }

    #[test]
    fn fast_jobs_get_capacity_times_two_round_trips_up_to_the_batch() {
        let mut p = Prefetch::new(8, 0, 500, Duration::from_secs(6));
        // 8 slots, 400 µs a job: 20,000 jobs/s; claims take 2 ms.
        held(&p, 100, Duration::from_micros(400));
        p.claimed(Duration::from_millis(2));
        assert_eq!(p.ahead(), 100, "20,000/s × 5 ms, the shortest horizon");
        p.claimed(Duration::from_millis(30));
        // rtt now (2 + 30) / 2 = 16 ms: 32 ms of work is 640, cut to the batch.
        assert_eq!(p.ahead(), 500);
    }

    #[test]
    fn the_concurrency_scales_the_capacity_not_the_claim_shape() {
        // The same 400 µs jobs on one slot: 2,500/s × 5 ms.
        let mut p = Prefetch::new(1, 0, 500, Duration::from_secs(6));
        held(&p, 100, Duration::from_micros(400));
        p.claimed(Duration::from_millis(2));
        assert_eq!(p.ahead(), 12);
    }

    #[test]
    fn slow_jobs_are_not_hoarded() {
        let mut p = Prefetch::new(8, 0, 500, Duration::from_secs(6));
        // 8 slots, 200 ms a job: 40/s; 5 ms of that is 0.2 of a job.
        held(&p, 8, Duration::from_millis(200));
        p.claimed(Duration::from_millis(2));
        assert_eq!(p.ahead(), 0, "{}", p.capacity());
    }

    #[test]
    fn a_buffered_job_never_waits_past_the_lease_bound() {
        // A huge round trip would ask for 1,000/s × 2 s; the lease bound of
        // 100 ms at 1,000/s allows 100.
        let mut p = Prefetch::new(1, 0, 10_000, Duration::from_millis(100));
        held(&p, 10, Duration::from_millis(1));
        p.claimed(Duration::from_secs(1));
        assert_eq!(p.ahead(), 100);
    }

    #[test]
    fn the_hold_time_follows_the_jobs() {
        let mut p = Prefetch::new(8, 0, 10_000, Duration::from_secs(6));
        p.claimed(Duration::from_millis(50)); // a 100 ms horizon
        held(&p, 10, Duration::from_millis(1));
        assert_eq!(p.ahead(), 800, "8,000/s");
        // The jobs became slow: the average moves halfway per look.
        held(&p, 10, Duration::from_millis(10));
        assert_eq!(p.ahead(), 145, "5.5 ms a job");
        held(&p, 10, Duration::from_millis(10));
        assert_eq!(p.ahead(), 103, "7.75 ms a job");
    }

    #[tokio::test]
    async fn a_slot_reports_how_long_it_was_held() {
        let mut p = Prefetch::new(2, 0, 500, Duration::from_secs(6));
        let sem = Arc::new(Semaphore::new(2));
        let slot = p.slot(sem.clone().try_acquire_owned().expect("a permit"));
        assert_eq!(sem.available_permits(), 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(slot);
        assert_eq!(
            sem.available_permits(),
            2,
            "the permit goes back with the slot"
        );
        let capacity = p.capacity();
        // 2 slots over at least 10 ms each: at most 200/s.
        assert!(capacity > 0.0 && capacity <= 200.0, "{capacity}");
    }
}
