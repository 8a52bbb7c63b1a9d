//! Configuration of a client and a node: queues and their concurrency, retry
//! policies per queue and kind, timeouts, leases, polling, shutdown and
//! retention. Every default is a `DEFAULT_*` constant; [`Config::validate`]
//! explains what is wrong instead of panicking.

use std::collections::BTreeMap;
use std::time::Duration;

use capstan_core::limits::{MAX_DELAY, MAX_TIMEOUT};
use capstan_core::{DEFAULT_QUEUE, Job, NodeId, RetryPolicy, validate_queue};

use crate::RuntimeError;

mod file;

/// One queue a node serves.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// The queue's name.
    pub name: String,
    /// Jobs of this queue run at once on this node.
    pub concurrency: usize,
}

impl QueueConfig {
    /// Jobs run at once per queue per node when nothing else is configured.
    pub const DEFAULT_CONCURRENCY: usize = 100;

    /// Serve `name` with the default concurrency.
    pub fn new(name: impl Into<String>) -> Self {
        QueueConfig {
            name: name.into(),
            concurrency: Self::DEFAULT_CONCURRENCY,
        }
    }

    /// Run up to `n` jobs of this queue at once on this node.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
}

/// Retry policies: a kind's own wins over its queue's, which wins over the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryPolicies {
    /// The policy when neither the kind nor the queue has one.
    pub default: RetryPolicy,
    /// Per queue.
    pub by_queue: BTreeMap<String, RetryPolicy>,
    /// Per kind.
    pub by_kind: BTreeMap<String, RetryPolicy>,
}

impl RetryPolicies {
    /// The policy that applies to a job of `kind` in `queue`.
    pub fn for_job(&self, kind: &str, queue: &str) -> &RetryPolicy {
        self.by_kind
            .get(kind)
            .or_else(|| self.by_queue.get(queue))
            .unwrap_or(&self.default)
    }
}

/// Everything a [`crate::Client`] and a [`crate::Node`] need to know.
///
/// It deserializes itself from its file form (`[node]` in `capstan.toml`:
/// see the `file` module), validated, and serializes back to it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "file::NodeFile", into = "file::NodeFile")]
pub struct Config {
    /// This node's id; `None` = a fresh one from the host name.
    pub node_id: Option<NodeId>,
    /// The queues this node serves.
    pub queues: Vec<QueueConfig>,
    /// Retry policies.
    pub retry: RetryPolicies,
    /// Timeout of jobs that set none (a heartbeat starts it over).
    pub default_timeout: Duration,
    /// The lease on a running job is its timeout plus this.
    pub lease_grace: Duration,
    /// How often the node tells the database it is alive.
    pub heartbeat_interval: Duration,
    /// A node silent for this long is dead; its jobs are rescued.
    pub node_timeout: Duration,
    /// How often the rescuer looks for lost jobs.
    pub rescue_interval: Duration,
    /// The longest the scheduler sleeps between promotions of due jobs.
    pub schedule_interval: Duration,
    /// Idle polling, the fallback behind wake-ups: first wait.
    pub poll_initial: Duration,
    /// Idle polling: longest wait.
    pub poll_max: Duration,
    /// Idle polling: growth per empty poll.
    pub poll_multiplier: f64,
    /// Most jobs claimed in one round trip.
    pub claim_batch: usize,
    /// Jobs a producer holds ready beyond its free slots at least, however
    /// slow its jobs (0: only what its measured rate calls for; see
    /// ARCHITECTURE, "Prefetch").
    pub prefetch_min: usize,
    /// Most finishes written in one round trip.
    pub complete_batch: usize,
    /// On shutdown, running jobs get this long to finish before they are
    /// cancelled and handed back.
    pub shutdown_grace: Duration,
    /// A cancelled handler gets this long to return before it is dropped.
    pub cancel_grace: Duration,
    /// Completed jobs are kept this long.
    pub retain_completed: Duration,
    /// Failed and cancelled jobs are kept this long.
    pub retain_failed: Duration,
    /// How often the cleaner runs.
    pub clean_interval: Duration,
    /// Most jobs deleted per statement by the cleaner.
    pub clean_batch: u32,
}

impl Config {
    /// Timeout of jobs that set none: 5 minutes (seed 001).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    /// Lease grace.
    pub const DEFAULT_LEASE_GRACE: Duration = Duration::from_secs(30);
    /// Node heartbeat interval.
    pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
    /// Node timeout: jobs of a silent node are rescued within about this long.
    pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(25);
    /// Rescue interval.
    pub const DEFAULT_RESCUE_INTERVAL: Duration = Duration::from_secs(5);
    /// Scheduler's longest sleep.
    pub const DEFAULT_SCHEDULE_INTERVAL: Duration = Duration::from_secs(1);
    /// Idle polling starts at 2 s (seed 001)…
    pub const DEFAULT_POLL_INITIAL: Duration = Duration::from_secs(2);
    /// …and grows to 30 s…
    pub const DEFAULT_POLL_MAX: Duration = Duration::from_secs(30);
    /// …by 1.5× per empty poll.
    pub const DEFAULT_POLL_MULTIPLIER: f64 = 1.5;
    /// Claim batch.
    pub const DEFAULT_CLAIM_BATCH: usize = 500;
    /// Finish batch.
    pub const DEFAULT_COMPLETE_BATCH: usize = 1000;
    /// Shutdown grace.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
    /// Cancel grace.
    pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);
    /// Completed jobs are kept 24 h.
    pub const DEFAULT_RETAIN_COMPLETED: Duration = Duration::from_secs(24 * 3600);
    /// Failed and cancelled jobs are kept 7 days.
    pub const DEFAULT_RETAIN_FAILED: Duration = Duration::from_secs(7 * 24 * 3600);
    /// Cleaner interval.
    pub const DEFAULT_CLEAN_INTERVAL: Duration = Duration::from_secs(60);
    /// Cleaner batch.
    pub const DEFAULT_CLEAN_BATCH: u32 = 1000;

    /// A buffered job that waited longer than this starts only once its
    /// lease was extended: half of what `lease_grace` leaves after
    /// `cancel_grace` (12.5 s by default).
    pub fn fresh_start(&self) -> Duration {
        self.lease_grace.saturating_sub(self.cancel_grace) / 2
    }

    /// A job the database says this node holds, that this node does not
    /// know, and that was claimed longer ago than this, is handed back (its
    /// claim's reply was lost). Longer than a buffered job may wait to start
    /// without a fresh lease, so a reply read late is fenced, never run.
    pub fn stray_after(&self) -> Duration {
        self.node_timeout.max(self.fresh_start()) + self.heartbeat_interval
    }

    /// Serve these queues (replacing the list).
    pub fn with_queues(mut self, queues: Vec<QueueConfig>) -> Self {
        self.queues = queues;
        self
    }

    /// Use this node id.
    pub fn with_node_id(mut self, id: NodeId) -> Self {
        self.node_id = Some(id);
        self
    }

    /// Check every setting.
    ///
    /// # Errors
    /// [`RuntimeError::Config`] naming the setting and what it needs.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |m: String| Err(RuntimeError::Config(m));
        let mut seen = std::collections::BTreeSet::new();
        for q in &self.queues {
            validate_queue(&q.name).map_err(|e| RuntimeError::Config(e.to_string()))?;
            if q.concurrency == 0 || q.concurrency > 100_000 {
                return bad(format!(
                    "queue {}: concurrency {} must be between 1 and 100000",
                    q.name, q.concurrency
                ));
            }
            if !seen.insert(&q.name) {
                return bad(format!("queue {} is listed twice", q.name));
            }
        }
        for p in std::iter::once(&self.retry.default)
            .chain(self.retry.by_queue.values())
            .chain(self.retry.by_kind.values())
        {
            p.validate()
                .map_err(|e| RuntimeError::Config(e.to_string()))?;
        }
        for (name, d) in [
            ("default_timeout", self.default_timeout),
            ("heartbeat_interval", self.heartbeat_interval),
            ("node_timeout", self.node_timeout),
            ("rescue_interval", self.rescue_interval),
            ("schedule_interval", self.schedule_interval),
            ("poll_initial", self.poll_initial),
            ("poll_max", self.poll_max),
            ("clean_interval", self.clean_interval),
            ("lease_grace", self.lease_grace),
            ("shutdown_grace", self.shutdown_grace),
            ("cancel_grace", self.cancel_grace),
            ("retain_completed", self.retain_completed),
            ("retain_failed", self.retain_failed),
        ] {
            // Retention may be long; every other duration is at most a year.
            let max = if name.starts_with("retain_") {
                MAX_DELAY
            } else {
                MAX_TIMEOUT
            };
            if d > max {
                return bad(format!(
                    "{name} = {} is too long: at most {} is accepted",
                    humanize(d),
                    humanize(max)
                ));
            }
            let may_be_zero = matches!(name, "shutdown_grace" | "cancel_grace");
            if d.is_zero() && !may_be_zero {
                return bad(format!("{name} must be more than zero"));
            }
        }
        let stall = (self.node_timeout + self.heartbeat_interval) / 2;
        if self.lease_grace < stall {
            return bad(format!(
                "lease_grace ({}) must be at least half of node_timeout + heartbeat_interval ({}): a database outage too short to be told from late beats must not outlast the grace of a lease whose finish it held back",
                humanize(self.lease_grace),
                humanize(stall)
            ));
        }
        if self.lease_grace <= self.cancel_grace {
            return bad(format!(
                "lease_grace ({}) must be longer than cancel_grace ({}): a stopped handler may take cancel_grace to return, and must not outlive its lease",
                humanize(self.lease_grace),
                humanize(self.cancel_grace)
            ));
        }
        if self.node_timeout < self.heartbeat_interval * 3 {
            return bad(format!(
                "node_timeout ({}) must be at least 3 times heartbeat_interval ({}): a node must be able to miss a beat, and a stalled database must be told from a dead node",
                humanize(self.node_timeout),
                humanize(self.heartbeat_interval)
            ));
        }
        if self.poll_max < self.poll_initial {
            return bad("poll_max must not be shorter than poll_initial".into());
        }
        if !(self.poll_multiplier.is_finite() && self.poll_multiplier >= 1.0) {
            return bad(format!(
                "poll_multiplier {} must be >= 1",
                self.poll_multiplier
            ));
        }
        if self.prefetch_min > self.claim_batch {
            return bad(format!(
                "prefetch_min {} must not exceed claim_batch {}",
                self.prefetch_min, self.claim_batch
            ));
        }
        for (name, n, max) in [
            ("claim_batch", self.claim_batch, 10_000),
            ("complete_batch", self.complete_batch, 10_000),
            ("clean_batch", self.clean_batch as usize, 100_000),
        ] {
            if n == 0 || n > max {
                return bad(format!("{name} {n} must be between 1 and {max}"));
            }
        }
        Ok(())
    }
}

/// How long a job may run and how long its lease lasts: the one place the
/// runtime computes either (the claim's SQL computes the same lease from the
/// same two settings, `coalesce(timeout_ms, default) + grace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseTerms {
    /// Timeout of jobs that set none.
    pub(crate) default_timeout: Duration,
    /// What a lease adds to a job's timeout.
    pub(crate) lease_grace: Duration,
}

impl LeaseTerms {
    /// How long an attempt of `job` may run.
    pub(crate) fn timeout(&self, job: &Job) -> Duration {
        job.timeout_or(self.default_timeout)
    }

    /// How long a lease on `job` lasts from its claim or extension.
    pub(crate) fn lease(&self, job: &Job) -> Duration {
        self.timeout(job) + self.lease_grace
    }
}

impl Config {
    /// The lease terms of this configuration.
    pub(crate) fn lease_terms(&self) -> LeaseTerms {
        LeaseTerms {
            default_timeout: self.default_timeout,
            lease_grace: self.lease_grace,
        }
    }
}

/// A duration as people write it (`5m`, `365days`), for messages.
fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs.is_multiple_of(86_400) && secs > 0 {
        format!("{}d", secs / 86_400)
    } else if d.subsec_nanos() == 0 {
        format!("{secs}s")
    } else {
        format!("{d:?}")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: None,
            queues: vec![QueueConfig::new(DEFAULT_QUEUE)],
            retry: RetryPolicies::default(),
            default_timeout: Self::DEFAULT_TIMEOUT,
            lease_grace: Self::DEFAULT_LEASE_GRACE,
            heartbeat_interval: Self::DEFAULT_HEARTBEAT_INTERVAL,
            node_timeout: Self::DEFAULT_NODE_TIMEOUT,
            rescue_interval: Self::DEFAULT_RESCUE_INTERVAL,
            schedule_interval: Self::DEFAULT_SCHEDULE_INTERVAL,
            poll_initial: Self::DEFAULT_POLL_INITIAL,
            poll_max: Self::DEFAULT_POLL_MAX,
            poll_multiplier: Self::DEFAULT_POLL_MULTIPLIER,
            claim_batch: Self::DEFAULT_CLAIM_BATCH,
            prefetch_min: 0,
            complete_batch: Self::DEFAULT_COMPLETE_BATCH,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            cancel_grace: Self::DEFAULT_CANCEL_GRACE,
            retain_completed: Self::DEFAULT_RETAIN_COMPLETED,
            retain_failed: Self::DEFAULT_RETAIN_FAILED,
            clean_interval: Self::DEFAULT_CLEAN_INTERVAL,
            clean_batch: Self::DEFAULT_CLEAN_BATCH,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_kind_policy_wins_over_queue() {
        let mut c = Config::default();
        c.validate().unwrap();
        c.retry.by_queue.insert(
            "mail".into(),
            RetryPolicy::exponential(3, Duration::from_secs(1), 2.0),
        );
        c.retry.by_kind.insert(
            "ai".into(),
            RetryPolicy::exponential(4, Duration::from_secs(2), 2.0),
        );
        assert_eq!(c.retry.for_job("ai", "mail").max_attempts, 4);
        assert_eq!(c.retry.for_job("x", "mail").max_attempts, 3);
        assert_eq!(c.retry.for_job("x", "y").max_attempts, 20);
    }

    /// The README's configuration section states these; a changed default
    /// must change it too.
    #[test]
    fn the_defaults_are_the_documented_ones() {
        let c = Config::default();
        let s = Duration::from_secs;
        assert_eq!(
            [
                c.default_timeout,
                c.lease_grace,
                c.cancel_grace,
                c.heartbeat_interval,
                c.rescue_interval,
                c.node_timeout,
                c.shutdown_grace,
                c.retain_completed,
                c.retain_failed,
            ],
            [
                s(5 * 60),
                s(30),
                s(5),
                s(5),
                s(5),
                s(25),
                s(20),
                s(24 * 3600),
                s(7 * 24 * 3600),
            ]
        );
        assert_eq!(c.queues.len(), 1);
        assert_eq!(
            (c.queues[0].name.as_str(), c.queues[0].concurrency),
            ("default", 100)
        );
        assert_eq!(c.retry.default.max_attempts, 20);
    }

    /// Every rule accepts its limit and refuses the next value past it.
    #[test]
    fn each_rule_accepts_its_limit_and_refuses_just_past_it() {
        let ok = |c: Config| c.validate().map_err(|e| e.to_string());
        let s = Duration::from_secs;
        let one_queue =
            |n| Config::default().with_queues(vec![QueueConfig::new("q").with_concurrency(n)]);
        assert!(ok(one_queue(100_000)).is_ok());
        assert!(ok(one_queue(100_001)).is_err());
        assert!(ok(one_queue(0)).is_err());
        let timeout = |d| Config {
            default_timeout: d,
            ..Config::default()
        };
        assert!(ok(timeout(MAX_TIMEOUT)).is_ok());
        assert!(ok(timeout(MAX_TIMEOUT + Duration::from_millis(1))).is_err());
        // Graces may be zero, intervals may not.
        assert!(
            ok(Config {
                shutdown_grace: Duration::ZERO,
                cancel_grace: Duration::ZERO,
                ..Config::default()
            })
            .is_ok()
        );
        let e = ok(Config {
            rescue_interval: Duration::ZERO,
            ..Config::default()
        })
        .unwrap_err();
        assert_eq!(
            e,
            "invalid configuration: rescue_interval must be more than zero"
        );
        // lease_grace down to half of node_timeout + heartbeat_interval (15 s).
        let grace = |d| Config {
            lease_grace: d,
            ..Config::default()
        };
        assert!(ok(grace(s(15))).is_ok());
        assert_eq!(
            ok(grace(Duration::from_millis(14_500))).unwrap_err(),
            "invalid configuration: lease_grace (14.5s) must be at least half of node_timeout + heartbeat_interval (15s): a database outage too short to be told from late beats must not outlast the grace of a lease whose finish it held back"
        );
        // node_timeout down to 3 heartbeat intervals.
        let beats = |t| Config {
            node_timeout: t,
            ..Config::default()
        };
        assert!(ok(beats(s(15))).is_ok());
        assert_eq!(
            ok(beats(s(14))).unwrap_err(),
            "invalid configuration: node_timeout (14s) must be at least 3 times heartbeat_interval (5s): a node must be able to miss a beat, and a stalled database must be told from a dead node"
        );
        // poll_multiplier: at least 1, finite.
        for (m, valid) in [
            (1.0, true),
            (0.99, false),
            (f64::INFINITY, false),
            (f64::NAN, false),
        ] {
            let c = Config {
                poll_multiplier: m,
                ..Config::default()
            };
            assert_eq!(ok(c).is_ok(), valid, "poll_multiplier {m}");
        }
        // Batches: 1 up to their maximum.
        for (n, valid) in [(0, false), (1, true), (10_000, true), (10_001, false)] {
            let c = Config {
                claim_batch: n,
                complete_batch: n,
                ..Config::default()
            };
            assert_eq!(ok(c).is_ok(), valid, "batch {n}");
        }
        let e = ok(Config {
            lease_grace: s(2 * 365 * 24 * 3600),
            ..Config::default()
        })
        .unwrap_err();
        assert!(
            e.contains("lease_grace = 730d is too long: at most 365d"),
            "{e}"
        );
    }

    /// A lost claim reply is handed back only once a buffered job could not
    /// have started under it without a fresh lease (so a late reader is
    /// fenced), and never before its node could have been judged dead.
    #[test]
    fn a_stray_claim_waits_past_a_buffered_start_and_a_node_timeout() {
        for (grace, timeout, beat) in [(30, 25, 5), (300, 25, 5), (3, 3, 1)] {
            let c = Config {
                lease_grace: Duration::from_secs(grace),
                node_timeout: Duration::from_secs(timeout),
                heartbeat_interval: Duration::from_secs(beat),
                ..Config::default()
            };
            assert!(
                c.stray_after() >= c.fresh_start() + c.heartbeat_interval,
                "{c:?}"
            );
            assert!(c.stray_after() > c.node_timeout, "{c:?}");
        }
    }

    #[test]
    fn nonsense_settings_are_refused_with_their_name() {
        let c = Config {
            node_timeout: Duration::from_secs(1),
            ..Config::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("node_timeout")
        );
        let c = Config::default().with_queues(vec![QueueConfig::new("a").with_concurrency(0)]);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("concurrency")
        );
        let c = Config::default().with_queues(vec![QueueConfig::new("bad queue")]);
        assert!(c.validate().is_err());
    }

    #[test]
    fn durations_past_their_bounds_are_refused_with_their_name() {
        let c = Config {
            default_timeout: Duration::MAX,
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("default_timeout") && e.contains("365d"), "{e}");
        for c in [
            Config {
                lease_grace: Duration::from_secs(366 * 24 * 3600),
                ..Config::default()
            },
            Config {
                poll_max: Duration::MAX,
                ..Config::default()
            },
            Config {
                retain_failed: Duration::MAX,
                ..Config::default()
            },
        ] {
            assert!(c.validate().is_err(), "{c:?}");
        }
        let c = Config {
            retain_completed: Duration::from_secs(10 * 365 * 24 * 3600),
            ..Config::default()
        };
        c.validate().unwrap();
        let mut c = Config::default();
        c.retry.default.max_delay = Duration::MAX;
        assert!(c.validate().unwrap_err().to_string().contains("max_delay"));
    }

    #[test]
    fn a_lease_grace_shorter_than_the_cancel_grace_is_refused() {
        let c = Config {
            lease_grace: Duration::from_secs(5),
            cancel_grace: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("lease_grace") && e.contains("cancel_grace"),
            "{e}"
        );
        // Nor one an unnoticed outage could outlast.
        let c = Config {
            lease_grace: Duration::from_secs(14),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("node_timeout + heartbeat_interval"), "{e}");
        // A node timeout too short to tell a stall from a death.
        let c = Config {
            node_timeout: Duration::from_secs(14),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("3 times"));
    }
}
