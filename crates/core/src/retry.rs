//! Retry policy: how many attempts a job gets and how long it waits between
//! them. Exponential backoff with a cap and jitter; the delay after attempt
//! `n` is `min(cap, base × multiplier^(n-1))`, spread by ± `jitter`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::limits::{self, MAX_DELAY};

/// How a job is retried. Set per queue and per kind in the runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts allowed in all (the first run included).
    pub max_attempts: i32,
    /// Delay after the first failed attempt.
    #[serde(with = "millis")]
    pub base_delay: Duration,
    /// Factor applied to the delay after each further failure.
    pub multiplier: f64,
    /// No delay is longer than this.
    #[serde(with = "millis")]
    pub max_delay: Duration,
    /// Random spread, as a fraction of the delay (0.1 = ±10 %); 0 = exact.
    pub jitter: f64,
}

impl RetryPolicy {
    /// Attempts a job gets when nothing else is configured.
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 20;
    /// First retry delay when nothing else is configured.
    pub const DEFAULT_BASE_DELAY: Duration = Duration::from_secs(1);
    /// Growth factor when nothing else is configured.
    pub const DEFAULT_MULTIPLIER: f64 = 2.0;
    /// Longest delay when nothing else is configured.
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(3600);
    /// Jitter when nothing else is configured.
    pub const DEFAULT_JITTER: f64 = 0.1;

    /// A policy of `max_attempts` with an exact (jitter-free) exponential schedule.
    pub fn exponential(max_attempts: i32, base_delay: Duration, multiplier: f64) -> Self {
        RetryPolicy {
            max_attempts,
            base_delay,
            multiplier,
            max_delay: Self::DEFAULT_MAX_DELAY,
            jitter: 0.0,
        }
    }

    /// Cap every delay at `max_delay`.
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Spread delays by ± `jitter` (a fraction).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Check that the numbers make a schedule.
    ///
    /// # Errors
    /// [`ValidationError::RetryPolicy`] saying which number is wrong.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=1000).contains(&self.max_attempts) {
            return Err(ValidationError::MaxAttempts(self.max_attempts));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(ValidationError::RetryPolicy(format!(
                "multiplier {} must be a number >= 1",
                self.multiplier
            )));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ValidationError::RetryPolicy(format!(
                "jitter {} must be between 0 and 1",
                self.jitter
            )));
        }
        limits::check_duration("max_delay", self.max_delay, MAX_DELAY)?;
        if self.max_delay < self.base_delay {
            return Err(ValidationError::RetryPolicy(
                "max_delay must not be shorter than base_delay".into(),
            ));
        }
        Ok(())
    }

    /// The delay before the next attempt after attempt `attempt` (1-based)
    /// failed, without jitter.
    pub fn base_delay_after(&self, attempt: i32) -> Duration {
        let exp = (attempt.max(1) - 1).min(200);
        let secs = self.base_delay.as_secs_f64() * self.multiplier.powi(exp);
        let capped = secs.min(self.max_delay.as_secs_f64());
        Duration::try_from_secs_f64(capped.max(0.0)).unwrap_or(self.max_delay)
    }

    /// The delay before the next attempt after attempt `attempt` failed, with
    /// jitter drawn from `unit`, a number in `[0, 1)` (pass `rand::random()`;
    /// tests pass a fixed number).
    pub fn delay_after(&self, attempt: i32, unit: f64) -> Duration {
        let base = self.base_delay_after(attempt).as_secs_f64();
        let spread = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Duration::try_from_secs_f64((base * spread).min(self.max_delay.as_secs_f64()))
            .unwrap_or(self.max_delay)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            base_delay: Self::DEFAULT_BASE_DELAY,
            multiplier: Self::DEFAULT_MULTIPLIER,
            max_delay: Self::DEFAULT_MAX_DELAY,
            jitter: Self::DEFAULT_JITTER,
        }
    }
}

/// A duration as whole milliseconds: the JSON form of a policy (what the
/// API returns). `capstan.toml` writes humantime strings instead, through
/// the runtime's file form of its config.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_001_schedule_is_2_4_8_seconds() {
        let p = RetryPolicy::exponential(4, Duration::from_secs(2), 2.0);
        assert_eq!(p.delay_after(1, 0.5), Duration::from_secs(2));
        assert_eq!(p.delay_after(2, 0.5), Duration::from_secs(4));
        assert_eq!(p.delay_after(3, 0.5), Duration::from_secs(8));
    }

    #[test]
    fn each_delay_is_the_last_times_the_multiplier() {
        // Multiplier 3, so that an exponential schedule cannot be mistaken for
        // a linear one (with 2, both give 2, 4 for the first two retries).
        let p = RetryPolicy::exponential(10, Duration::from_secs(1), 3.0);
        let delays: Vec<u64> = (1..=4).map(|n| p.delay_after(n, 0.5).as_secs()).collect();
        assert_eq!(delays, vec![1, 3, 9, 27]);
        let p = RetryPolicy::exponential(10, Duration::from_secs(2), 2.0);
        assert_eq!(p.delay_after(5, 0.5), Duration::from_secs(32));
    }

    #[test]
    fn delays_are_capped_and_jitter_stays_in_bounds() {
        let p = RetryPolicy::exponential(50, Duration::from_secs(1), 2.0)
            .with_max_delay(Duration::from_secs(60))
            .with_jitter(0.2);
        assert_eq!(p.base_delay_after(40), Duration::from_secs(60));
        let low = p.delay_after(3, 0.0).as_secs_f64();
        let high = p.delay_after(3, 0.999_999).as_secs_f64();
        assert!((3.19..=3.21).contains(&low), "{low}");
        assert!((4.79..=4.81).contains(&high), "{high}");
        assert!(p.delay_after(40, 0.999) <= Duration::from_secs(60));
    }

    #[test]
    fn nonsense_policies_are_refused() {
        let p = RetryPolicy {
            multiplier: 0.5,
            ..RetryPolicy::default()
        };
        assert!(p.validate().is_err());
        let p = RetryPolicy {
            jitter: 2.0,
            ..RetryPolicy::default()
        };
        assert!(p.validate().is_err());
        let p = RetryPolicy::default().with_max_delay(Duration::MAX);
        let e = p.validate().unwrap_err();
        assert!(e.to_string().contains("max_delay"), "{e}");
        RetryPolicy::default().validate().unwrap();
    }

    #[test]
    fn a_constant_delay_is_a_valid_policy_and_a_shorter_cap_is_not() {
        let p = RetryPolicy::exponential(5, Duration::from_secs(3), 1.0)
            .with_max_delay(Duration::from_secs(3));
        p.validate().unwrap();
        assert_eq!(p.delay_after(4, 0.5), Duration::from_secs(3));
        let e = RetryPolicy::exponential(5, Duration::from_secs(3), 1.0)
            .with_max_delay(Duration::from_secs(2))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("max_delay"), "{e}");
    }

    #[test]
    fn a_policy_survives_a_round_trip_through_json() {
        let p = RetryPolicy::exponential(7, Duration::from_millis(1500), 3.0)
            .with_max_delay(Duration::from_secs(90))
            .with_jitter(0.25);
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<RetryPolicy>(&text).unwrap(), p);
    }
}
