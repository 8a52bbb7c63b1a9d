//! Configuration: `--database-url` > `CAPSTAN_DATABASE_URL` > `database_url`
//! in `capstan.toml` > `sqlite://capstan.db`, and the runtime settings of
//! `capstan.toml`. Unknown keys are errors, so a typo never goes unnoticed.
//!
//! ```toml
//! database_url = "postgres://capstan@localhost/app"
//! queues = ["default", "mail"]
//! concurrency = 100            # per queue, per node
//! default_timeout = "5m"
//! shutdown_grace = "20s"
//! node_timeout = "25s"
//! retain_completed = "24h"
//! retain_failed = "7d"
//! [queue.mail]
//! concurrency = 10
//! [retry.default]
//! max_attempts = 20
//! base_delay = "1s"
//! multiplier = 2.0
//! max_delay = "1h"
//! jitter = 0.1
//! [retry.kinds."documents.process"]
//! max_attempts = 4
//! base_delay = "2s"
//! jitter = 0.0
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use capstan::{AnyStore, Config, QueueConfig, RetryPolicy, Store};
use serde::Deserialize;

use crate::args::{Cli, parse_duration};

/// The database URL when nothing else names one.
pub(crate) const DEFAULT_URL: &str = "sqlite://capstan.db";
const DEFAULT_CONFIG_FILE: &str = "capstan.toml";

/// Resolved settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) config: Config,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    node_id: Option<String>,
    queues: Option<Vec<String>>,
    concurrency: Option<usize>,
    default_timeout: Option<String>,
    lease_grace: Option<String>,
    heartbeat_interval: Option<String>,
    node_timeout: Option<String>,
    rescue_interval: Option<String>,
    poll_initial: Option<String>,
    poll_max: Option<String>,
    poll_multiplier: Option<f64>,
    claim_batch: Option<usize>,
    complete_batch: Option<usize>,
    schedule_interval: Option<String>,
    shutdown_grace: Option<String>,
    cancel_grace: Option<String>,
    retain_completed: Option<String>,
    retain_failed: Option<String>,
    clean_interval: Option<String>,
    clean_batch: Option<u32>,
    #[serde(default)]
    queue: BTreeMap<String, QueueFile>,
    #[serde(default)]
    retry: RetryFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueFile {
    concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryFile {
    default: Option<PolicyFile>,
    #[serde(default)]
    queues: BTreeMap<String, PolicyFile>,
    #[serde(default)]
    kinds: BTreeMap<String, PolicyFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    max_attempts: Option<i32>,
    base_delay: Option<String>,
    multiplier: Option<f64>,
    max_delay: Option<String>,
    jitter: Option<f64>,
}

fn duration(key: &str, value: &Option<String>, default: Duration) -> anyhow::Result<Duration> {
    match value {
        None => Ok(default),
        Some(v) => parse_duration(v).map_err(|e| anyhow::anyhow!("{key} = {v:?}: {e}")),
    }
}

impl PolicyFile {
    fn apply(&self, base: &RetryPolicy, key: &str) -> anyhow::Result<RetryPolicy> {
        Ok(RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            base_delay: duration(
                &format!("{key}.base_delay"),
                &self.base_delay,
                base.base_delay,
            )?,
            multiplier: self.multiplier.unwrap_or(base.multiplier),
            max_delay: duration(&format!("{key}.max_delay"), &self.max_delay, base.max_delay)?,
            jitter: self.jitter.unwrap_or(base.jitter),
        })
    }
}

impl Settings {
    /// Resolve settings for `cli`.
    pub(crate) fn load(cli: &Cli) -> anyhow::Result<Settings> {
        let (file, path) = match &cli.config {
            Some(p) => (read(p)?, Some(p.clone())),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => (
                read(Path::new(DEFAULT_CONFIG_FILE))?,
                Some(PathBuf::from(DEFAULT_CONFIG_FILE)),
            ),
            None => (FileConfig::default(), None),
        };
        let config = runtime_config(&file).with_context(|| match &path {
            Some(p) => format!("invalid setting in {}", p.display()),
            None => "invalid setting".to_owned(),
        })?;
        let url = cli
            .database_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .or(file.database_url.clone())
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        Ok(Settings { url, config })
    }

    /// Open the store and apply pending migrations (`migrate`, `serve`,
    /// `bench`: the commands that are asked to).
    pub(crate) async fn open_and_migrate(&self) -> anyhow::Result<AnyStore> {
        let store = AnyStore::connect(&self.url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Open the store of a database already migrated to this version;
    /// writes no schema (and creates no SQLite file), and says how to fix a
    /// missing or older one.
    pub(crate) async fn open(&self) -> anyhow::Result<AnyStore> {
        if !self.url.starts_with("postgres") {
            let path = capstan::sqlite::SqliteConfig::from_url(&self.url)?.path;
            if !path.exists() {
                bail!(
                    "no database at {}: run `capstan migrate` to create it (or `capstan serve`, which migrates), or pass --database-url",
                    path.display()
                );
            }
        }
        let store = AnyStore::connect(&self.url).await?;
        store.check_schema().await?;
        Ok(store)
    }

    /// A client on [`Settings::open`]'s store with these settings.
    pub(crate) async fn client(&self) -> anyhow::Result<capstan::Client<AnyStore>> {
        Ok(capstan::Client::with_config(
            self.open().await?,
            self.config.clone(),
        )?)
    }
}

fn read(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

fn runtime_config(f: &FileConfig) -> anyhow::Result<Config> {
    let d = Config::default();
    let concurrency = f.concurrency.unwrap_or(QueueConfig::DEFAULT_CONCURRENCY);
    let names = f
        .queues
        .clone()
        .unwrap_or_else(|| vec![capstan::core::DEFAULT_QUEUE.to_owned()]);
    for q in f.queue.keys() {
        if !names.contains(q) {
            bail!("[queue.{q}] is configured but {q} is not in `queues` ({names:?})");
        }
    }
    let queues = names
        .iter()
        .map(|n| QueueConfig {
            name: n.clone(),
            concurrency: f
                .queue
                .get(n)
                .and_then(|q| q.concurrency)
                .unwrap_or(concurrency),
        })
        .collect();
    let default_policy = match &f.retry.default {
        Some(p) => p.apply(&RetryPolicy::default(), "retry.default")?,
        None => RetryPolicy::default(),
    };
    let mut retry = capstan::RetryPolicies {
        default: default_policy.clone(),
        ..Default::default()
    };
    for (q, p) in &f.retry.queues {
        retry.by_queue.insert(
            q.clone(),
            p.apply(&default_policy, &format!("retry.queues.{q}"))?,
        );
    }
    for (k, p) in &f.retry.kinds {
        retry.by_kind.insert(
            k.clone(),
            p.apply(&default_policy, &format!("retry.kinds.{k}"))?,
        );
    }
    let config = Config {
        node_id: f.node_id.clone().map(capstan::NodeId),
        queues,
        retry,
        default_timeout: duration("default_timeout", &f.default_timeout, d.default_timeout)?,
        lease_grace: duration("lease_grace", &f.lease_grace, d.lease_grace)?,
        heartbeat_interval: duration(
            "heartbeat_interval",
            &f.heartbeat_interval,
            d.heartbeat_interval,
        )?,
        node_timeout: duration("node_timeout", &f.node_timeout, d.node_timeout)?,
        rescue_interval: duration("rescue_interval", &f.rescue_interval, d.rescue_interval)?,
        poll_initial: duration("poll_initial", &f.poll_initial, d.poll_initial)?,
        poll_max: duration("poll_max", &f.poll_max, d.poll_max)?,
        poll_multiplier: f.poll_multiplier.unwrap_or(d.poll_multiplier),
        claim_batch: f.claim_batch.unwrap_or(d.claim_batch),
        complete_batch: f.complete_batch.unwrap_or(d.complete_batch),
        schedule_interval: duration(
            "schedule_interval",
            &f.schedule_interval,
            d.schedule_interval,
        )?,
        shutdown_grace: duration("shutdown_grace", &f.shutdown_grace, d.shutdown_grace)?,
        cancel_grace: duration("cancel_grace", &f.cancel_grace, d.cancel_grace)?,
        retain_completed: duration("retain_completed", &f.retain_completed, d.retain_completed)?,
        retain_failed: duration("retain_failed", &f.retain_failed, d.retain_failed)?,
        clean_interval: duration("clean_interval", &f.clean_interval, d.clean_interval)?,
        clean_batch: f.clean_batch.unwrap_or(d.clean_batch),
    };
    config.validate()?;
    Ok(config)
}
