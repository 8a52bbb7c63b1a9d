//! `capstan enqueue`: one job from flags, or every job of a JSON-lines file
//! (`--batch FILE`, `-` = stdin), all or nothing: a malformed line is
//! reported with its number (exit 2) and nothing from the file is enqueued.
//!
//! A job of a kind no live node serving its queue has a handler for is
//! enqueued all the same (its node may not be started yet), with a warning
//! on stderr saying so.

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use capstan::{Client, NewJob, Store, StoreTx};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::args::{EnqueueArgs, parse_duration};
use crate::settings::Settings;

/// Jobs written per statement when enqueueing a file.
const BATCH: usize = 5_000;

pub(crate) async fn run(settings: &Settings, args: EnqueueArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.batch {
        return run_batch(settings, path, args.json).await;
    }
    let Some(kind) = args.kind.clone() else {
        bail!("give a job kind, or --batch FILE");
    };
    let mut job = NewJob::new(
        kind,
        args.args
            .clone()
            .unwrap_or(Value::Object(Default::default())),
    );
    if let Some(q) = args.queue {
        job.queue = q;
    }
    job.priority = args.priority.unwrap_or(0);
    job.delay = args.delay;
    job.run_at = args.run_at;
    job.idempotency_key = args.idempotency_key;
    job.dedupe_key = args.dedupe_key;
    job.max_attempts = args.max_attempts;
    job.timeout = args.timeout;
    job.tags = args.tags;
    job.validate()?;
    let client = settings.client().await?;
    let enqueued = client.enqueue(job).await?;
    let job = client
        .job(enqueued.id)
        .await?
        .with_context(|| format!("job {} vanished right after enqueue", enqueued.id))?;
    let handled = warn_if_unhandled(&client, [(&job.queue, &job.kind)]).await?;
    if args.json {
        let mut v = serde_json::to_value(&job)?;
        v["existing"] = Value::Bool(enqueued.existing);
        v["handled"] = Value::Bool(handled);
        println!("{v}");
    } else if enqueued.existing {
        println!(
            "job {} already exists ({}, {}); nothing enqueued",
            job.id, job.kind, job.state
        );
    } else {
        println!(
            "enqueued job {} ({} in queue {}, {})",
            job.id, job.kind, job.queue, job.state
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of a batch file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    kind: String,
    #[serde(default)]
    args: Option<Value>,
    queue: Option<String>,
    priority: Option<i16>,
    run_at: Option<DateTime<Utc>>,
    delay: Option<String>,
    delay_ms: Option<u64>,
    max_attempts: Option<i32>,
    timeout: Option<String>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
    idempotency_key: Option<String>,
    dedupe_key: Option<String>,
}

impl Line {
    fn into_job(self) -> anyhow::Result<NewJob> {
        let dur =
            |s: Option<String>, ms: Option<u64>, name: &str| -> anyhow::Result<Option<Duration>> {
                match (s, ms) {
                    (Some(_), Some(_)) => bail!("give {name} or {name}_ms, not both"),
                    (Some(s), None) => Ok(Some(
                        parse_duration(&s).map_err(|e| anyhow::anyhow!("{name}: {e}"))?,
                    )),
                    (None, ms) => Ok(ms.map(Duration::from_millis)),
                }
            };
        let mut job = NewJob::new(
            self.kind,
            self.args.unwrap_or(Value::Object(Default::default())),
        );
        if let Some(q) = self.queue {
            job.queue = q;
        }
        job.priority = self.priority.unwrap_or(0);
        job.run_at = self.run_at;
        job.delay = dur(self.delay, self.delay_ms, "delay")?;
        job.max_attempts = self.max_attempts;
        job.timeout = dur(self.timeout, self.timeout_ms, "timeout")?;
        job.tags = self.tags;
        job.idempotency_key = self.idempotency_key;
        job.dedupe_key = self.dedupe_key;
        job.validate()?;
        Ok(job)
    }
}

fn read_jobs(path: &Path) -> anyhow::Result<Vec<NewJob>> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(path)
            .with_context(|| format!("cannot open batch file {}", path.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut jobs = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("{}: cannot read line {n}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let job = serde_json::from_str::<Line>(&line)
            .map_err(anyhow::Error::from)
            .and_then(Line::into_job)
            .with_context(|| {
                format!(
                    "{} line {n} is not a valid job; nothing was enqueued",
                    path.display()
                )
            })?;
        jobs.push(job);
    }
    Ok(jobs)
}

/// Warn on stderr for each (queue, kind) that no live node handles; returns
/// true when every one is handled.
pub(crate) async fn warn_if_unhandled<'a, S: capstan::Store>(
    client: &Client<S>,
    jobs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> anyhow::Result<bool> {
    let nodes = client.nodes().await?;
    let now = capstan::Clock::now(client.clock().as_ref());
    let mut all = true;
    let mut seen = std::collections::BTreeSet::new();
    for (queue, kind) in jobs {
        if !seen.insert((queue, kind)) || nodes.iter().any(|n| n.handles(queue, kind, now)) {
            continue;
        }
        all = false;
        eprintln!(
            "warning: no live node serves queue {queue} with a handler for kind {kind}; the job waits until one does (start `capstan serve` where a handler for {kind} is registered)"
        );
    }
    Ok(all)
}

async fn run_batch(settings: &Settings, path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let jobs = read_jobs(path).map_err(crate::usage::Usage::wrap)?;
    let kinds: Vec<(String, String)> = jobs
        .iter()
        .map(|j| (j.queue.clone(), j.kind.clone()))
        .collect();
    let client = settings.client().await?;
    let total = jobs.len();
    let bar = progress(total as u64, json);
    // All or nothing: every batch in one transaction.
    let mut tx = client.store().begin().await?;
    let mut inserted = Vec::with_capacity(total);
    let mut rest = jobs;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(BATCH));
        let batch = std::mem::replace(&mut rest, tail);
        inserted.extend(client.enqueue_many_in(&mut tx, batch).await?);
    }
    tx.commit().await?;
    bar.finish_and_clear();
    warn_if_unhandled(&client, kinds.iter().map(|(q, k)| (q, k))).await?;
    let new = inserted.iter().filter(|i| !i.existing).count();
    if json {
        println!(
            "{}",
            serde_json::json!({ "enqueued": new, "existing": total - new })
        );
    } else {
        println!("enqueued {new} jobs ({} already existed)", total - new);
    }
    Ok(ExitCode::SUCCESS)
}

fn progress(len: u64, json: bool) -> indicatif::ProgressBar {
    if json || !std::io::stderr().is_terminal() || len < 10_000 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("enqueueing {len} jobs in one transaction…"));
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
