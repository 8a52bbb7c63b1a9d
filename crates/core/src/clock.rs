//! Where time comes from. Everything time-based (backoff, leases, node
//! liveness, retention) reads a [`Clock`], so tests pin and move time instead
//! of sleeping.
//!
//! The storage layer receives `Option<Timestamp>`: `None` means "use the
//! database's own clock" (one clock for every node sharing a PostgreSQL
//! server); a [`ManualClock`] passes its pinned time instead.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use crate::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// The time to hand to the database: `None` for the real clock (the
    /// database uses its own), `Some` for a pinned test clock.
    fn pinned(&self) -> Option<Timestamp>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }

    fn pinned(&self) -> Option<Timestamp> {
        None
    }
}

/// A clock that stands still until a test moves it. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    /// A clock pinned at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock pinned at the current real time, rounded to the microsecond
    /// (what both databases store).
    pub fn starting_now() -> Self {
        let now = Utc::now();
        let micros = now.timestamp_micros();
        Self::new(chrono::DateTime::from_timestamp_micros(micros).unwrap_or(now))
    }

    /// Move the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }

    /// Set the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pinned(&self) -> Option<Timestamp> {
        Some(self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::starting_now();
        let t0 = c.now();
        c.advance(Duration::from_secs(30));
        assert_eq!(c.now() - t0, chrono::Duration::seconds(30));
        assert_eq!(c.clone().pinned(), Some(c.now()));
        assert_eq!(SystemClock.pinned(), None);
    }

    #[test]
    fn the_system_clock_tells_the_time_and_a_manual_one_can_be_set() {
        let before = Utc::now();
        let t = SystemClock.now();
        assert!(before <= t && t <= Utc::now());
        let c = ManualClock::starting_now();
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        c.set(at);
        assert_eq!(c.now(), at);
    }
}
