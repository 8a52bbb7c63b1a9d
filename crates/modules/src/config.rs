//! A module's settings (`[modules.NAME]` in `capstan.toml`): how long a
//! value is fresh, how long it may then be served stale, when a busy key is
//! refreshed ahead of expiry, how "not found" and failures are remembered.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How one module caches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModuleConfig {
    /// A value is fresh this long after it was fetched.
    #[serde(with = "capstan_core::humantime_serde")]
    pub ttl: Duration,
    /// Then it may still be served, stale, this long: at once while a
    /// refresh runs in the background (stale-while-revalidate), or while
    /// refreshes fail (stale-if-error).
    #[serde(with = "capstan_core::humantime_serde")]
    pub stale_ttl: Duration,
    /// A key read when less than this much of its freshness is left is
    /// refreshed in the background, so readers of a busy key never see it
    /// stale or missing. `None`: only once it is stale.
    #[serde(
        with = "capstan_core::humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_ahead: Option<Duration>,
    /// `NVDA` and `nvda` are one key (keys are lower-cased).
    pub case_insensitive: bool,
    /// How long a "not found" from the refresher is remembered.
    #[serde(with = "capstan_core::humantime_serde")]
    pub negative_ttl: Duration,
    /// A refresh that has not answered after this long fails (and its lock
    /// is released); the lock's lease is a little longer.
    #[serde(with = "capstan_core::humantime_serde")]
    pub refresh_timeout: Duration,
    /// How long a read with nothing to serve waits for a refresh.
    #[serde(with = "capstan_core::humantime_serde")]
    pub wait_timeout: Duration,
    /// After a failed refresh, the next waits this long, doubling with
    /// each failure in a row up to `retry_max`, with `jitter`.
    #[serde(with = "capstan_core::humantime_serde")]
    pub retry_base: Duration,
    /// The longest wait after failures.
    #[serde(with = "capstan_core::humantime_serde")]
    pub retry_max: Duration,
    /// A fraction (0 to 1) of each wait, added or taken at random, so that
    /// keys that failed together do not retry together.
    pub jitter: f64,
    /// Entries kept in each node's memory (L1), the least used dropped
    /// first.
    pub l1_max_entries: u64,
}

impl ModuleConfig {
    /// Fresh for a minute.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
    /// Servable stale for an hour after.
    pub const DEFAULT_STALE_TTL: Duration = Duration::from_secs(3600);

    /// A module whose values are fresh for `ttl` (the other settings at
    /// their defaults).
    pub fn with_ttl(ttl: Duration) -> Self {
        ModuleConfig {
            ttl,
            ..ModuleConfig::default()
        }
    }

    /// The refresh lock's lease: the refresh timeout and a margin, so that
    /// a refresh that timed out still writes its failure under its lock.
    pub fn lease(&self) -> Duration {
        self.refresh_timeout + self.refresh_timeout / 2 + Duration::from_secs(1)
    }

    /// The wait after `failures` failed refreshes in a row (the first is
    /// 1), before jitter.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        self.retry_base.saturating_mul(factor).min(self.retry_max)
    }

    /// Check the settings.
    ///
    /// # Errors
    /// A message naming the setting and what it needs.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let positive = [
            ("ttl", self.ttl),
            ("negative_ttl", self.negative_ttl),
            ("refresh_timeout", self.refresh_timeout),
            ("wait_timeout", self.wait_timeout),
            ("retry_base", self.retry_base),
        ];
        for (field, d) in positive {
            if d.is_zero() {
                return Err(format!("modules.{name}.{field} must be more than zero"));
            }
        }
        if self.retry_max < self.retry_base {
            return Err(format!(
                "modules.{name}.retry_max ({:?}) is shorter than retry_base ({:?})",
                self.retry_max, self.retry_base
            ));
        }
        if let Some(ahead) = self.refresh_ahead
            && (ahead.is_zero() || ahead >= self.ttl)
        {
            return Err(format!(
                "modules.{name}.refresh_ahead ({ahead:?}) must be more than zero and less than the ttl ({:?})",
                self.ttl
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!(
                "modules.{name}.jitter = {} must be between 0 and 1",
                self.jitter
            ));
        }
        if self.l1_max_entries == 0 {
            return Err(format!("modules.{name}.l1_max_entries must be at least 1"));
        }
        crate::check_name(name)
    }
}

impl Default for ModuleConfig {
    fn default() -> Self {
        ModuleConfig {
            ttl: Self::DEFAULT_TTL,
            stale_ttl: Self::DEFAULT_STALE_TTL,
            refresh_ahead: None,
            case_insensitive: false,
            negative_ttl: Duration::from_secs(30),
            refresh_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(30),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            jitter: 0.2,
            l1_max_entries: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_settings_are_checked() {
        let c = ModuleConfig {
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(10),
            ..ModuleConfig::default()
        };
        let waits: Vec<u64> = (1..=6).map(|n| c.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(10));
        assert!(c.validate("quotes").is_ok());
        let bad = ModuleConfig {
            refresh_ahead: Some(Duration::from_secs(60)),
            ..ModuleConfig::default()
        };
        assert!(
            bad.validate("quotes")
                .unwrap_err()
                .contains("refresh_ahead")
        );
        let bad = ModuleConfig {
            jitter: 1.5,
            ..ModuleConfig::default()
        };
        assert!(bad.validate("quotes").unwrap_err().contains("jitter"));
        assert!(c.validate("no spaces").is_err());
    }
}
