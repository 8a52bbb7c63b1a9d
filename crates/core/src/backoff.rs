//! Idle backoff for the polling fallback: an idle worker polls at `initial`,
//! then waits `multiplier` times longer after each empty poll up to `max`, and
//! starts over as soon as it finds work (seed 001: 2 s → 30 s, × 1.5).
//!
//! Polling is only the fallback: wake-ups (LISTEN/NOTIFY, in-process) start
//! work within milliseconds; the backoff bounds how late a missed wake-up is.

use std::time::Duration;

/// The state of one idle backoff.
#[derive(Debug, Clone)]
pub struct IdleBackoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    current: Duration,
}

impl IdleBackoff {
    /// A backoff that starts at `initial` and grows by `multiplier` up to `max`.
    pub fn new(initial: Duration, max: Duration, multiplier: f64) -> Self {
        IdleBackoff {
            initial,
            max: max.max(initial),
            multiplier: multiplier.max(1.0),
            current: initial,
        }
    }

    /// The wait before the next poll; each call makes the following one longer.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.current;
        let grown = self.current.as_secs_f64() * self.multiplier;
        self.current =
            Duration::try_from_secs_f64(grown.min(self.max.as_secs_f64())).unwrap_or(self.max);
        wait
    }

    /// Work was found: the next wait is `initial` again.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_half_up_to_thirty_seconds_and_resets_on_work() {
        let mut b = IdleBackoff::new(Duration::from_secs(2), Duration::from_secs(30), 1.5);
        let waits: Vec<u64> = (0..9).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(
            waits,
            vec![2000, 3000, 4500, 6750, 10125, 15187, 22781, 30000, 30000]
        );
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_secs(2));
    }
}
