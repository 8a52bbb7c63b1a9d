//! The file form of [`Config`]: what `[node]` in `capstan.toml` holds, and
//! what `capstan config` prints. `Config` deserializes through it, so the
//! runtime is the one source of truth for its settings: every field can be
//! set, durations are humantime strings (`500ms`, `30s`, `5m`, `7d`), an
//! unknown key is an error naming it, and the result is validated.
//!
//! ```toml
//! [node]
//! queues = ["default", "mail"]     # or "default,mail"
//! concurrency = 100                # per queue, per node
//! default_timeout = "5m"
//! [node.queue.mail]
//! concurrency = 10
//! [node.retry.default]
//! max_attempts = 20
//! base_delay = "1s"
//! [node.retry.kinds."documents.process"]
//! max_attempts = 4                 # the other fields inherit retry.default
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use capstan_core::{NodeId, RetryPolicy};
use serde::{Deserialize, Serialize};

use super::{Config, QueueConfig, RetryPolicies};

/// Every setting of a node, as the file spells it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct NodeFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<String>,
    #[serde(deserialize_with = "names")]
    queues: Vec<String>,
    concurrency: usize,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    queue: BTreeMap<String, QueueFile>,
    retry: RetryFile,
    #[serde(with = "capstan_core::humantime_serde")]
    default_timeout: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    lease_grace: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    heartbeat_interval: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    node_timeout: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    rescue_interval: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    schedule_interval: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    poll_initial: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    poll_max: Duration,
    poll_multiplier: f64,
    claim_batch: usize,
    prefetch_min: usize,
    complete_batch: usize,
    #[serde(with = "capstan_core::humantime_serde")]
    shutdown_grace: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    cancel_grace: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    retain_completed: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    retain_failed: Duration,
    #[serde(with = "capstan_core::humantime_serde")]
    clean_interval: Duration,
    clean_batch: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<usize>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RetryFile {
    default: PolicyFile,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    queues: BTreeMap<String, PolicyFile>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    kinds: BTreeMap<String, PolicyFile>,
}

/// A retry policy whose missing fields inherit another (a queue's or kind's
/// inherit `retry.default`, which inherits the built-in default).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_attempts: Option<i32>,
    #[serde(
        default,
        with = "capstan_core::humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    base_delay: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    multiplier: Option<f64>,
    #[serde(
        default,
        with = "capstan_core::humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    max_delay: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jitter: Option<f64>,
}

impl PolicyFile {
    fn over(&self, base: &RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            base_delay: self.base_delay.unwrap_or(base.base_delay),
            multiplier: self.multiplier.unwrap_or(base.multiplier),
            max_delay: self.max_delay.unwrap_or(base.max_delay),
            jitter: self.jitter.unwrap_or(base.jitter),
        }
    }

    fn full(p: &RetryPolicy) -> Self {
        PolicyFile {
            max_attempts: Some(p.max_attempts),
            base_delay: Some(p.base_delay),
            multiplier: Some(p.multiplier),
            max_delay: Some(p.max_delay),
            jitter: Some(p.jitter),
        }
    }
}

impl Default for NodeFile {
    fn default() -> Self {
        NodeFile::from(Config::default())
    }
}

impl From<Config> for NodeFile {
    fn from(c: Config) -> Self {
        // The most common concurrency is the file's `concurrency` (on a tie,
        // the default if it is among them, else the first queue's); queues
        // that differ get a `[queue.<name>]` table.
        let mut counts: Vec<(usize, usize)> = Vec::new();
        for q in &c.queues {
            match counts.iter_mut().find(|(n, _)| *n == q.concurrency) {
                Some((_, k)) => *k += 1,
                None => counts.push((q.concurrency, 1)),
            }
        }
        let most = counts.iter().map(|(_, k)| *k).max().unwrap_or(0);
        let tied: Vec<usize> = counts
            .iter()
            .filter(|(_, k)| *k == most)
            .map(|(n, _)| *n)
            .collect();
        let concurrency = if tied.contains(&QueueConfig::DEFAULT_CONCURRENCY) || tied.is_empty() {
            QueueConfig::DEFAULT_CONCURRENCY
        } else {
            tied[0]
        };
        let queue = c
            .queues
            .iter()
            .filter(|q| q.concurrency != concurrency)
            .map(|q| {
                let file = QueueFile {
                    concurrency: Some(q.concurrency),
                };
                (q.name.clone(), file)
            })
            .collect();
        NodeFile {
            node_id: c.node_id.map(|n| n.0),
            queues: c.queues.into_iter().map(|q| q.name).collect(),
            concurrency,
            queue,
            retry: RetryFile {
                default: PolicyFile::full(&c.retry.default),
                queues: c
                    .retry
                    .by_queue
                    .iter()
                    .map(|(k, p)| (k.clone(), PolicyFile::full(p)))
                    .collect(),
                kinds: c
                    .retry
                    .by_kind
                    .iter()
                    .map(|(k, p)| (k.clone(), PolicyFile::full(p)))
                    .collect(),
            },
            default_timeout: c.default_timeout,
            lease_grace: c.lease_grace,
            heartbeat_interval: c.heartbeat_interval,
            node_timeout: c.node_timeout,
            rescue_interval: c.rescue_interval,
            schedule_interval: c.schedule_interval,
            poll_initial: c.poll_initial,
            poll_max: c.poll_max,
            poll_multiplier: c.poll_multiplier,
            claim_batch: c.claim_batch,
            prefetch_min: c.prefetch_min,
            complete_batch: c.complete_batch,
            shutdown_grace: c.shutdown_grace,
            cancel_grace: c.cancel_grace,
            retain_completed: c.retain_completed,
            retain_failed: c.retain_failed,
            clean_interval: c.clean_interval,
            clean_batch: c.clean_batch,
        }
    }
}

impl TryFrom<NodeFile> for Config {
    type Error = String;

    fn try_from(f: NodeFile) -> Result<Self, String> {
        for q in f.queue.keys() {
            if !f.queues.contains(q) {
                return Err(format!(
                    "[queue.{q}] is configured but {q} is not in `queues` ({:?}): add it there, or remove the table",
                    f.queues
                ));
            }
        }
        let default = f.retry.default.over(&RetryPolicy::default());
        let config = Config {
            node_id: f.node_id.map(NodeId),
            queues: f
                .queues
                .iter()
                .map(|name| QueueConfig {
                    name: name.clone(),
                    concurrency: f
                        .queue
                        .get(name)
                        .and_then(|q| q.concurrency)
                        .unwrap_or(f.concurrency),
                })
                .collect(),
            retry: RetryPolicies {
                by_queue: f
                    .retry
                    .queues
                    .iter()
                    .map(|(k, p)| (k.clone(), p.over(&default)))
                    .collect(),
                by_kind: f
                    .retry
                    .kinds
                    .iter()
                    .map(|(k, p)| (k.clone(), p.over(&default)))
                    .collect(),
                default,
            },
            default_timeout: f.default_timeout,
            lease_grace: f.lease_grace,
            heartbeat_interval: f.heartbeat_interval,
            node_timeout: f.node_timeout,
            rescue_interval: f.rescue_interval,
            schedule_interval: f.schedule_interval,
            poll_initial: f.poll_initial,
            poll_max: f.poll_max,
            poll_multiplier: f.poll_multiplier,
            claim_batch: f.claim_batch,
            prefetch_min: f.prefetch_min,
            complete_batch: f.complete_batch,
            shutdown_grace: f.shutdown_grace,
            cancel_grace: f.cancel_grace,
            retain_completed: f.retain_completed,
            retain_failed: f.retain_failed,
            clean_interval: f.clean_interval,
            clean_batch: f.clean_batch,
        };
        config.validate().map_err(|e| match e {
            crate::RuntimeError::Config(m) => m,
            other => other.to_string(),
        })?;
        Ok(config)
    }
}

/// Queue names as a list, or as one comma-separated string (the form an
/// environment variable takes).
fn names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Text(String),
    }
    Ok(
        match Names::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a list of queue names, e.g. [\"default\", \"mail\"], or \"default,mail\"",
            )
        })? {
            Names::List(l) => l,
            Names::Text(t) => t
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        toml::from_str::<Config>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_section_is_the_default_and_every_field_round_trips() {
        let c = parse("").unwrap();
        assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()));
        let mut custom = Config {
            queues: vec![
                QueueConfig::new("a").with_concurrency(3),
                QueueConfig::new("b"),
            ],
            cancel_grace: Duration::from_millis(1500),
            clean_batch: 7,
            ..Config::default()
        };
        custom.retry.by_kind.insert(
            "k".into(),
            RetryPolicy::exponential(4, Duration::from_secs(2), 2.0),
        );
        let text = toml::to_string(&custom).unwrap();
        let back = parse(&text).unwrap();
        assert_eq!(format!("{back:?}"), format!("{custom:?}"), "{text}");
    }

    #[test]
    fn policies_inherit_the_default_policy_and_queues_their_concurrency() {
        let c = parse(
            "queues = \"a, b\"\nconcurrency = 8\n[queue.b]\nconcurrency = 2\n\
             [retry.default]\nmax_attempts = 9\nbase_delay = \"3s\"\n\
             [retry.kinds.x]\nmax_attempts = 4\n",
        )
        .unwrap();
        assert_eq!(
            c.queues,
            vec![
                QueueConfig::new("a").with_concurrency(8),
                QueueConfig::new("b").with_concurrency(2)
            ]
        );
        let x = &c.retry.by_kind["x"];
        assert_eq!((x.max_attempts, x.base_delay), (4, Duration::from_secs(3)));
        assert_eq!(c.retry.default.max_attempts, 9);
    }

    #[test]
    fn bad_values_name_the_key_the_value_and_the_accepted_form() {
        let e = parse("default_timeout = \"soon\"\n").unwrap_err();
        assert!(
            e.contains("default_timeout") && e.contains("soon") && e.contains("30s"),
            "{e}"
        );
        let e = parse("concurency = 3\n").unwrap_err();
        assert!(e.contains("concurency") && e.contains("concurrency"), "{e}");
        let e = parse("[queue.mail]\nconcurrency = 3\n").unwrap_err();
        assert!(e.contains("[queue.mail]") && e.contains("queues"), "{e}");
        let e = parse("node_timeout = \"1s\"\n").unwrap_err();
        assert!(
            e.contains("node_timeout") && e.contains("heartbeat_interval"),
            "{e}"
        );
    }
}
