//! `capstan bench`: measure this database and this machine, in a queue of the
//! bench's own that is removed afterwards (unless `--keep`).
//!
//! 1. single-insert enqueue: jobs enqueued one call at a time, from one
//!    caller and from [`CALLERS`] concurrent callers (as the peers are
//!    measured);
//! 2. bulk enqueue: `--jobs` jobs in batches of 1,000;
//! 3. drain: a node with the default configuration (and `--concurrency`)
//!    runs those `capstan.noop` jobs; timed from node start until every
//!    handler ran and every completion is written;
//! 4. pickup: an idle node, jobs enqueued one at a time; latency from just
//!    before the enqueue call to the handler's start (p50, p99).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use capstan::{AnyStore, Client, NewJob, QueueConfig, QueueStore, Store, Workers};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::args::BenchArgs;
use crate::settings::Settings;

const BULK_BATCH: usize = 1_000;
const PICKUP_SAMPLES: usize = 200;
/// Concurrent callers of the second single-enqueue figure.
const CALLERS: usize = 8;

#[derive(Debug, Serialize)]
struct Report {
    backend: &'static str,
    jobs: usize,
    concurrency: usize,
    enqueue_per_s: f64,
    enqueue_8_callers_per_s: f64,
    bulk_enqueue_per_s: f64,
    drain_per_s: f64,
    pickup_p50_ms: f64,
    pickup_p99_ms: f64,
}

pub(crate) async fn run(settings: &Settings, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let store = settings.open_and_migrate().await?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let queue = format!("capstan-bench-{}-{nanos:x}", std::process::id());
    let concurrency = args.concurrency.unwrap_or(QueueConfig::DEFAULT_CONCURRENCY);
    let mut config = settings.config.clone();
    config.queues = vec![QueueConfig::new(&queue).with_concurrency(concurrency)];
    config.node_id = None;
    let client = Client::with_config(store.clone(), config).context("bench configuration")?;
    let show = !args.json && std::io::stderr().is_terminal();
    let jobs = usize::try_from(args.jobs).context("--jobs is too large")?;
    let result = measure(&client, &queue, jobs, show).await;
    if !args.keep {
        store.delete_queue(&queue).await?;
    }
    let Measured {
        enqueue,
        enqueue_callers,
        bulk,
        drain,
        pickup,
    } = result?;
    let report = Report {
        backend: store.capabilities().backend,
        jobs,
        concurrency,
        enqueue_per_s: round(enqueue),
        enqueue_8_callers_per_s: round(enqueue_callers),
        bulk_enqueue_per_s: round(bulk),
        drain_per_s: round(drain),
        pickup_p50_ms: round(percentile(&pickup, 0.50)),
        pickup_p99_ms: round(percentile(&pickup, 0.99)),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("backend             {}", report.backend);
        println!(
            "jobs                {} (concurrency {})",
            report.jobs, report.concurrency
        );
        println!("enqueue (single)    {:>10.0} jobs/s", report.enqueue_per_s);
        println!(
            "enqueue (8 callers) {:>10.0} jobs/s",
            report.enqueue_8_callers_per_s
        );
        println!(
            "enqueue (bulk)      {:>10.0} jobs/s",
            report.bulk_enqueue_per_s
        );
        println!("drain               {:>10.0} jobs/s", report.drain_per_s);
        println!(
            "pickup p50 / p99    {:>6.2} / {:.2} ms",
            report.pickup_p50_ms, report.pickup_p99_ms
        );
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// What [`measure`] found.
struct Measured {
    enqueue: f64,
    enqueue_callers: f64,
    bulk: f64,
    drain: f64,
    pickup: Vec<f64>,
}

async fn measure(
    client: &Client<AnyStore>,
    queue: &str,
    jobs: usize,
    show: bool,
) -> anyhow::Result<Measured> {
    let noop = |i: usize| NewJob::new("capstan.noop", json!({ "i": i })).with_queue(queue);

    let singles = jobs.clamp(1, 2_000);
    let bar = progress(show, singles, "enqueue, one at a time");
    let t = Instant::now();
    for i in 0..singles {
        client.enqueue(noop(i)).await?;
        bar.inc(1);
    }
    let enqueue = per_second(singles, t.elapsed());
    bar.finish_and_clear();
    client.store().delete_queue(queue).await?;

    let bar = progress(show, singles, "enqueue, 8 callers");
    let t = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for k in 0..CALLERS {
        let (client, bar, queue) = (client.clone(), bar.clone(), queue.to_owned());
        callers.spawn(async move {
            for i in (k..singles).step_by(CALLERS) {
                client
                    .enqueue(NewJob::new("capstan.noop", json!({ "i": i })).with_queue(&queue))
                    .await?;
                bar.inc(1);
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = callers.join_next().await {
        done.context("an enqueue caller panicked")??;
    }
    let enqueue_callers = per_second(singles, t.elapsed());
    bar.finish_and_clear();
    client.store().delete_queue(queue).await?;

    let bar = progress(show, jobs, "enqueue, in batches");
    let t = Instant::now();
    for start in (0..jobs).step_by(BULK_BATCH) {
        let batch: Vec<NewJob> = (start..(start + BULK_BATCH).min(jobs)).map(noop).collect();
        let n = batch.len();
        client.enqueue_many(batch).await?;
        bar.inc(n as u64);
    }
    let bulk = per_second(jobs, t.elapsed());
    bar.finish_and_clear();

    let bar = progress(show, jobs, "drain");
    let ran = Arc::new(AtomicUsize::new(0));
    let all_ran = Arc::new(Notify::new());
    let mut workers = Workers::empty();
    {
        let (ran, all_ran, bar) = (ran.clone(), all_ran.clone(), bar.clone());
        workers.register_fn("capstan.noop", move |_ctx, args: Value| {
            let n = ran.fetch_add(1, Ordering::Relaxed) + 1;
            bar.inc(1);
            if n == jobs {
                all_ran.notify_one();
            }
            async move { Ok(args) }
        })?;
    }
    let t = Instant::now();
    let node = client.node(workers)?.start();
    all_ran.notified().await;
    node.shutdown().await?; // writes every completion still in flight
    let drain = per_second(jobs, t.elapsed());
    bar.finish_and_clear();

    let bar = progress(show, PICKUP_SAMPLES, "pickup latency");
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let mut workers = Workers::empty();
    workers.register_fn("capstan.noop", move |_ctx, args: Value| {
        let _ = tx.send(Instant::now());
        async move { Ok(args) }
    })?;
    let node = client.node(workers)?.start();
    let mut pickup = Vec::with_capacity(PICKUP_SAMPLES);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..PICKUP_SAMPLES {
        tokio::time::sleep(Duration::from_millis(5)).await; // let the node go idle
        let t0 = Instant::now();
        client.enqueue(noop(i)).await?;
        let started = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .context("an enqueued job was not picked up within 60 s")?
            .context("the pickup node stopped")?;
        pickup.push(started.duration_since(t0).as_secs_f64() * 1000.0);
        bar.inc(1);
    }
    node.shutdown().await?;
    bar.finish_and_clear();
    Ok(Measured {
        enqueue,
        enqueue_callers,
        bulk,
        drain,
        pickup,
    })
}

fn progress(show: bool, len: usize, what: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:24} [{bar:40}] {pos}/{len} ({per_sec})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
