//! `capstan bench`: measure this database and this machine, in a queue of the
//! bench's own that is removed afterwards (unless `--keep`).
//!
//! 1. single-insert enqueue: jobs enqueued one call at a time, from one
//!    caller and from [`CALLERS`] concurrent callers (as the peers are
//!    measured);
//! 2. bulk enqueue: `--jobs` jobs in batches of 1,000;
//! 3. drain: a node with the default configuration (and `--concurrency`),
//!    or `--nodes` nodes sharing that concurrency, runs those `capstan.noop`
//!    jobs; timed from node start until every handler ran and every
//!    completion is written (see `drain`; with `--idle`, the nodes then
//!    idle and the database's statements per second are counted);
//!    The drain also reports what it cost (see `usage`): CPU time per
//!    1,000 jobs of this process and of the database server, and the
//!    statements (round trips) the server ran per job;
//! 4. steady load: a node running while jobs arrive at half the measured
//!    drain rate, in a batch every [`STEADY_TICK`], for [`STEADY_FOR`];
//!    latency from just before a batch's enqueue call to each of its jobs'
//!    handler start (p50, p99);
//! 5. pickup: an idle node, jobs enqueued one at a time; latency from just
//!    before the enqueue call to the handler's start (p50, p99).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use capstan::{AnyStore, Client, NewJob, QueueConfig, QueueStore, Store, Workers};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::args::BenchArgs;
use crate::settings::Settings;

mod drain;
mod http;
mod usage;

use drain::Drainers;
use usage::Usage;

const BULK_BATCH: usize = 1_000;
const PICKUP_SAMPLES: usize = 200;
/// Concurrent callers of the second single-enqueue figure.
const CALLERS: usize = 8;
/// How often the steady load enqueues a batch.
const STEADY_TICK: Duration = Duration::from_millis(10);
/// How long the steady load lasts.
const STEADY_FOR: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
struct Report {
    backend: &'static str,
    jobs: usize,
    concurrency: usize,
    nodes: usize,
    enqueue_per_s: f64,
    enqueue_8_callers_per_s: f64,
    bulk_enqueue_per_s: f64,
    drain_per_s: f64,
    drain_cpu_ms_per_1000_jobs: Option<f64>,
    drain_db_cpu_ms_per_1000_jobs: Option<f64>,
    drain_db_statements_per_job: Option<f64>,
    idle_db_statements_per_s: Option<f64>,
    steady_per_s: f64,
    steady_p50_ms: f64,
    steady_p99_ms: f64,
    pickup_p50_ms: f64,
    pickup_p99_ms: f64,
}

pub(crate) async fn run(settings: &Settings, args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.http {
        return http::run(settings, args).await;
    }
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
    let nodes = usize::from(args.nodes);
    let drainers = Drainers::connect(
        settings,
        &store,
        &settings.config,
        &queue,
        concurrency,
        nodes,
    )
    .await?;
    let result = measure(&client, &drainers, &queue, jobs, args.idle, show).await;
    drainers.close().await;
    if !args.keep {
        store.delete_queue(&queue).await?;
    }
    let Measured {
        enqueue,
        enqueue_callers,
        bulk,
        drain,
        drain_usage,
        idle_per_s,
        steady_per_s,
        steady,
        pickup,
    } = result?;
    let report = Report {
        backend: store.capabilities().backend,
        jobs,
        concurrency,
        nodes,
        enqueue_per_s: round(enqueue),
        enqueue_8_callers_per_s: round(enqueue_callers),
        bulk_enqueue_per_s: round(bulk),
        drain_per_s: round(drain),
        drain_cpu_ms_per_1000_jobs: drain_usage.cpu_ms_per_1000.map(round),
        drain_db_cpu_ms_per_1000_jobs: drain_usage.db_cpu_ms_per_1000.map(round),
        drain_db_statements_per_job: drain_usage.db_statements_per_job.map(round3),
        idle_db_statements_per_s: idle_per_s.map(round),
        steady_per_s: round(steady_per_s),
        steady_p50_ms: round(percentile(&steady, 0.50)),
        steady_p99_ms: round(percentile(&steady, 0.99)),
        pickup_p50_ms: round(percentile(&pickup, 0.50)),
        pickup_p99_ms: round(percentile(&pickup, 0.99)),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("backend             {}", report.backend);
        println!(
            "jobs                {} (concurrency {}, {} node{})",
            report.jobs,
            report.concurrency,
            report.nodes,
            if report.nodes == 1 { "" } else { "s" }
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
        let shown = |x: Option<f64>, unit: &str| {
            x.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.2} {unit}"))
        };
        println!(
            "  CPU per 1,000 jobs capstan {}, database {}",
            shown(report.drain_cpu_ms_per_1000_jobs, "ms"),
            shown(report.drain_db_cpu_ms_per_1000_jobs, "ms"),
        );
        println!(
            "  statements per job {}",
            shown(report.drain_db_statements_per_job, "")
        );
        if let Some(idle) = report.idle_db_statements_per_s {
            println!("  idle, statements   {idle:.2} per second");
        }
        println!(
            "steady load         {:>10.0} jobs/s: start p50 / p99 {:.2} / {:.2} ms",
            report.steady_per_s, report.steady_p50_ms, report.steady_p99_ms
        );
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
    drain_usage: Usage,
    idle_per_s: Option<f64>,
    steady_per_s: f64,
    steady: Vec<f64>,
    pickup: Vec<f64>,
}

async fn measure(
    client: &Client<AnyStore>,
    drainers: &Drainers,
    queue: &str,
    jobs: usize,
    idle: Option<Duration>,
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
    let (drain, drain_usage) = drainers.drain(jobs, &bar).await?;
    bar.finish_and_clear();
    let idle_per_s = match idle {
        Some(idle) => drainers.idle(idle).await?,
        None => None,
    };

    // One node for the steady load, then idle for the pickup samples; its
    // handler reports each job's number and start.
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let mut workers = Workers::empty();
    workers.register_fn("capstan.noop", move |_ctx, args: Value| {
        let at = Instant::now();
        if let Some(i) = args.get("i").and_then(Value::as_u64) {
            let _ = tx.send((i as usize, at));
        }
        async move { Ok(args) }
    })?;
    let node = client.node(workers)?.start();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (steady_per_s, steady) = steady_load(client, queue, drain / 2.0, &mut rx, show).await?;

    let bar = progress(show, PICKUP_SAMPLES, "pickup latency");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut pickup = Vec::with_capacity(PICKUP_SAMPLES);
    for i in 0..PICKUP_SAMPLES {
        tokio::time::sleep(Duration::from_millis(5)).await; // let the node go idle
        let t0 = Instant::now();
        client.enqueue(noop(i)).await?;
        let started = next_start(&mut rx).await?;
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
        drain_usage,
        idle_per_s,
        steady_per_s,
        steady,
        pickup,
    })
}

/// Enqueue at `rate` jobs/s in a batch every [`STEADY_TICK`] for
/// [`STEADY_FOR`] to a running node; returns the rate offered and each
/// job's latency from its batch's enqueue call to its start, in ms.
async fn steady_load(
    client: &Client<AnyStore>,
    queue: &str,
    rate: f64,
    starts: &mut mpsc::UnboundedReceiver<(usize, Instant)>,
    show: bool,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let per_tick = ((rate * STEADY_TICK.as_secs_f64()).round() as usize).max(1);
    let ticks = (STEADY_FOR.as_millis() / STEADY_TICK.as_millis()) as usize;
    let total = per_tick * ticks;
    let bar = progress(show, total, "steady load");
    let mut sent = Vec::with_capacity(total);
    let mut interval = tokio::time::interval(STEADY_TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let t = Instant::now();
    for tick in 0..ticks {
        interval.tick().await;
        let first = tick * per_tick;
        let batch: Vec<NewJob> = (first..first + per_tick)
            .map(|i| NewJob::new("capstan.noop", json!({ "i": i })).with_queue(queue))
            .collect();
        let t0 = Instant::now();
        client.enqueue_many(batch).await?;
        sent.extend(std::iter::repeat_n(t0, per_tick));
    }
    let offered = per_second(total, t.elapsed());
    let mut latency = vec![f64::NAN; total];
    for _ in 0..total {
        let (i, at) = tokio::time::timeout(Duration::from_secs(60), starts.recv())
            .await
            .context("the steady load's jobs did not all start within 60 s")?
            .context("the steady-load node stopped")?;
        let Some(t0) = sent.get(i) else {
            anyhow::bail!("a job outside the steady load started: {i}");
        };
        latency[i] = at.duration_since(*t0).as_secs_f64() * 1000.0;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((offered, latency))
}

/// The next job start the bench node reports.
async fn next_start(
    starts: &mut mpsc::UnboundedReceiver<(usize, Instant)>,
) -> anyhow::Result<Instant> {
    let (_, at) = tokio::time::timeout(Duration::from_secs(60), starts.recv())
        .await
        .context("an enqueued job was not picked up within 60 s")?
        .context("the pickup node stopped")?;
    Ok(at)
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

pub(super) fn per_second(n: usize, d: Duration) -> f64 {
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

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
