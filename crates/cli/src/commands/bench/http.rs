//! `capstan bench --http`: the HTTP API under load, on the configured
//! database, with an API server in this process on a free port:
//!
//! 1. drain through pull workers: `--jobs` no-op jobs claimed in batches
//!    and completed in batches over HTTP, by `--concurrency` loops of a
//!    Rust client, then by the TypeScript and the Python worker of
//!    `examples/` (run as processes with that concurrency; `node` and
//!    `python3` must be installed, and `--examples` must point at the
//!    repository's `examples/`);
//! 2. push: a push queue delivering `--jobs` jobs to a local server that
//!    answers 200, with `--concurrency` pushes in flight;
//! 3. live status: `--streams` job event streams open at once; the time
//!    from just before each job's completion is sent to its stream's
//!    `completed` event (p50, p99) — on PostgreSQL the completions go
//!    through a second server with connections of its own, so each event
//!    crosses from one node to another —, and this process's resident
//!    memory before and with the streams open (servers and clients share it).

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use capstan::runtime::push::PushConfig;
use capstan::{AnyStore, Client, NewJob, QueueConfig, QueueStore, Store, Workers};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{per_second, percentile, round};
use crate::args::BenchArgs;
use crate::settings::Settings;

#[derive(Debug, Serialize)]
struct Report {
    backend: &'static str,
    jobs: usize,
    concurrency: usize,
    http_rust_per_s: f64,
    http_ts_per_s: Option<f64>,
    http_py_per_s: Option<f64>,
    push_per_s: f64,
    sse_streams: usize,
    sse_p50_ms: f64,
    sse_p99_ms: f64,
    sse_rss_before_mb: Option<f64>,
    sse_rss_mb: Option<f64>,
}

pub(crate) async fn run(settings: &Settings, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let store = settings.open_and_migrate().await?;
    let jobs = usize::try_from(args.jobs).context("--jobs is too large")?;
    let concurrency = args.concurrency.unwrap_or(QueueConfig::DEFAULT_CONCURRENCY);
    let tag = format!("capstan-bench-http-{}", std::process::id());
    let client = Client::with_config(store.clone(), settings.config.clone())?;
    let stop = CancellationToken::new();
    let server = capstan_server::ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        tokens: Vec::new(),
        ..settings.server.clone()
    };
    let listener = tokio::net::TcpListener::bind(server.listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let state =
        capstan_server::ServerState::new(client.clone(), server.clone(), stop.clone()).await?;
    let serving = tokio::spawn(capstan_server::serve(listener, state));
    // On PostgreSQL the streams' jobs are completed through a second server
    // with connections of its own, as another node would: the event crosses
    // the database. (SQLite's nodes are one process.)
    let (other_base, other) = if store.capabilities().backend == "postgres" {
        let other_store = settings.open().await?;
        let other_client = Client::with_config(other_store, settings.config.clone())?;
        let listener = tokio::net::TcpListener::bind(server.listen).await?;
        let other_base = format!("http://{}", listener.local_addr()?);
        let state = capstan_server::ServerState::new(other_client, server, stop.clone()).await?;
        (
            other_base,
            Some(tokio::spawn(capstan_server::serve(listener, state))),
        )
    } else {
        (base.clone(), None)
    };
    let queues: Vec<String> = ["rust", "ts", "py", "push", "sse"]
        .iter()
        .map(|q| format!("{tag}-{q}"))
        .collect();
    let result = measure(
        &client,
        [&base, &other_base],
        &queues,
        jobs,
        concurrency,
        args.streams,
        &args.examples,
    )
    .await;
    stop.cancel();
    let _ = serving.await;
    if let Some(other) = other {
        let _ = other.await;
    }
    for q in &queues {
        store.delete_queue(q).await?;
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let opt =
            |x: Option<f64>| x.map_or_else(|| "not run".to_owned(), |x| format!("{x:.0} jobs/s"));
        println!("backend                 {}", report.backend);
        println!(
            "jobs                    {} (concurrency {})",
            report.jobs, report.concurrency
        );
        println!(
            "pull, Rust HTTP loops   {:>8.0} jobs/s",
            report.http_rust_per_s
        );
        println!("pull, TypeScript worker {}", opt(report.http_ts_per_s));
        println!("pull, Python worker     {}", opt(report.http_py_per_s));
        println!("push to a local 2xx     {:>8.0} jobs/s", report.push_per_s);
        println!(
            "{} event streams: completion to event p50 / p99 {:.2} / {:.2} ms; memory {} → {} MB",
            report.sse_streams,
            report.sse_p50_ms,
            report.sse_p99_ms,
            report
                .sse_rss_before_mb
                .map_or("?".into(), |m| format!("{m:.0}")),
            report.sse_rss_mb.map_or("?".into(), |m| format!("{m:.0}")),
        );
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn measure(
    client: &Client<AnyStore>,
    [base, other_base]: [&str; 2],
    queues: &[String],
    jobs: usize,
    concurrency: usize,
    streams: usize,
    examples: &Path,
) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(streams + concurrency)
        .build()?;
    let http_rust_per_s = rust_loops(client, &http, base, &queues[0], jobs, concurrency).await?;
    let ts = examples.join("worker-ts/worker.mjs");
    let http_ts_per_s = match ts.exists() {
        true => {
            Some(process_worker(client, base, &queues[1], jobs, concurrency, "node", &ts).await?)
        }
        false => {
            eprintln!(
                "bench: {} not found (run from the repository root, or pass --examples): TypeScript not run",
                ts.display()
            );
            None
        }
    };
    let py = examples.join("worker-py/worker.py");
    let http_py_per_s = match py.exists() {
        true => {
            Some(process_worker(client, base, &queues[2], jobs, concurrency, "python3", &py).await?)
        }
        false => {
            eprintln!("bench: {} not found: Python not run", py.display());
            None
        }
    };
    let push_per_s = push(client, &queues[3], jobs, concurrency).await?;
    let (sse, before, with) = sse(client, &http, [base, other_base], &queues[4], streams).await?;
    Ok(Report {
        backend: client.store().capabilities().backend,
        jobs,
        concurrency,
        http_rust_per_s: round(http_rust_per_s),
        http_ts_per_s: http_ts_per_s.map(round),
        http_py_per_s: http_py_per_s.map(round),
        push_per_s: round(push_per_s),
        sse_streams: streams,
        sse_p50_ms: round(percentile(&sse, 0.50)),
        sse_p99_ms: round(percentile(&sse, 0.99)),
        sse_rss_before_mb: before.map(round),
        sse_rss_mb: with.map(round),
    })
}

/// Enqueue `n` jobs of `kind` in `queue`, in batches.
async fn fill(client: &Client<AnyStore>, queue: &str, kind: &str, n: usize) -> anyhow::Result<()> {
    for start in (0..n).step_by(1000) {
        let batch = (start..(start + 1000).min(n))
            .map(|i| NewJob::new(kind, json!({ "i": i })).with_queue(queue))
            .collect();
        client.enqueue_many(batch).await?;
    }
    Ok(())
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> anyhow::Result<Value> {
    let res = http.post(&url).json(&body).send().await?;
    let status = res.status();
    let v: Value = res.json().await?;
    if !status.is_success() {
        bail!("{url} answered {status}: {v}");
    }
    Ok(v)
}

/// Two loops (one claims while the other completes), each holding up to
/// half of `concurrency` jobs: it claims that many and completes them in one
/// call. Timed to the last completion.
async fn rust_loops(
    client: &Client<AnyStore>,
    http: &reqwest::Client,
    base: &str,
    queue: &str,
    jobs: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    fill(client, queue, "bench.noop", jobs).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let loops = concurrency.clamp(1, 2);
    let max = (concurrency / loops).clamp(1, 1000);
    let t = Instant::now();
    let finished: Arc<std::sync::Mutex<Option<Duration>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..loops {
        let (http, done, finished) = (http.clone(), done.clone(), finished.clone());
        let (claim, complete) = (
            format!("{base}/v1/queues/{queue}/claim"),
            format!("{base}/v1/complete"),
        );
        tasks.spawn(async move {
            while done.load(Ordering::Acquire) < jobs {
                let got = post(
                    &http,
                    claim.clone(),
                    json!({"worker": format!("bench-rust-{i}"), "max": max, "wait": "1s"}),
                )
                .await?;
                let claimed = got["jobs"].as_array().cloned().unwrap_or_default();
                if claimed.is_empty() {
                    continue;
                }
                let batch: Vec<Value> = claimed
                    .iter()
                    .map(|j| json!({"id": j["id"], "lease": j["lease"]}))
                    .collect();
                let r = post(&http, complete.clone(), json!({ "jobs": batch })).await?;
                let n = r["completed"].as_array().map_or(0, Vec::len);
                if done.fetch_add(n, Ordering::AcqRel) + n >= jobs
                    && let Ok(mut f) = finished.lock()
                {
                    f.get_or_insert(t.elapsed());
                }
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a bench loop panicked")??;
    }
    let took = finished
        .lock()
        .ok()
        .and_then(|f| *f)
        .unwrap_or_else(|| t.elapsed());
    Ok(per_second(jobs, took))
}

/// Run a client's example worker as a process until `queue` is drained.
async fn process_worker(
    client: &Client<AnyStore>,
    base: &str,
    queue: &str,
    jobs: usize,
    concurrency: usize,
    program: &str,
    script: &PathBuf,
) -> anyhow::Result<f64> {
    fill(client, queue, "demo.echo", jobs).await?;
    let t = Instant::now();
    let mut child = tokio::process::Command::new(program)
        .arg(script)
        .env("CAPSTAN_URL", base)
        .env("QUEUE", queue)
        .env("CONCURRENCY", concurrency.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {program} (is it installed?)"))?;
    loop {
        let counts = client.queue_counts().await?;
        let left = counts
            .iter()
            .find(|c| c.queue == queue)
            .map_or(0, |c| c.available + c.running + c.retryable + c.scheduled);
        if left == 0 {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!("the {program} worker exited ({status}) with {left} jobs left");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = per_second(jobs, t.elapsed());
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    Ok(rate)
}

/// A node pushing `queue` to a local server answering 200.
async fn push(
    client: &Client<AnyStore>,
    queue: &str,
    jobs: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "{}" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let target = tokio::spawn(async move { axum::serve(listener, app).await });
    fill(client, queue, "bench.push", jobs).await?;
    let mut config = client.config().clone();
    config.queues = vec![QueueConfig::new(queue).with_concurrency(concurrency)];
    config.node_id = None;
    let mut workers = Workers::empty();
    workers.push(
        queue,
        PushConfig {
            concurrency,
            ..PushConfig::new(url)
        },
    )?;
    let node = Client::with_config(client.store().clone(), config)?
        .node(workers)?
        .start();
    let t = Instant::now();
    loop {
        let counts = client.queue_counts().await?;
        let c = counts.iter().find(|c| c.queue == queue);
        if c.is_some_and(|c| c.completed as usize >= jobs) {
            break;
        }
        if c.is_some_and(|c| c.failed > 0 || c.retryable > 0) {
            bail!("pushes failed: {c:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rate = per_second(jobs, t.elapsed());
    node.shutdown().await?;
    target.abort();
    Ok(rate)
}

/// `streams` job streams; completion-to-event latencies, and the memory.
async fn sse(
    client: &Client<AnyStore>,
    http: &reqwest::Client,
    [base, other_base]: [&str; 2],
    queue: &str,
    streams: usize,
) -> anyhow::Result<(Vec<f64>, Option<f64>, Option<f64>)> {
    if streams == 0 {
        return Ok((Vec::new(), None, None));
    }
    fill(client, queue, "bench.sse", streams).await?;
    let before = rss_mb();
    let sent: Arc<std::sync::Mutex<std::collections::HashMap<i64, Instant>>> = Arc::default();
    let ready = Arc::new(AtomicUsize::new(0));
    let mut readers = tokio::task::JoinSet::new();
    let ids: Vec<i64> = client
        .list_jobs(&capstan::store::jobs::ListJobs {
            queue: Some(queue.to_owned()),
            limit: streams as u32,
            ..Default::default()
        })
        .await?
        .iter()
        .map(|j| j.id.0)
        .collect();
    for &id in &ids {
        let (http, sent, ready) = (http.clone(), sent.clone(), ready.clone());
        let url = format!("{base}/v1/jobs/{id}/events");
        readers.spawn(async move {
            let mut res = http.get(url).send().await?;
            let mut buf = String::new();
            let mut counted = false;
            while let Some(chunk) = res.chunk().await? {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                if !counted && buf.contains("\"state\":\"available\"") {
                    counted = true;
                    ready.fetch_add(1, Ordering::AcqRel);
                }
                if buf.contains("\"state\":\"completed\"") {
                    let at = Instant::now();
                    let from = sent.lock().ok().and_then(|s| s.get(&id).copied());
                    return Ok::<_, anyhow::Error>(from.map(|f| (at - f).as_secs_f64() * 1000.0));
                }
            }
            Ok(None)
        });
    }
    while ready.load(Ordering::Acquire) < ids.len() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let with = rss_mb();
    // Complete them through the (other) server, 50 at a time, noting when
    // each was sent.
    let (claim, complete) = (
        format!("{other_base}/v1/queues/{queue}/claim"),
        format!("{other_base}/v1/complete"),
    );
    let mut left = ids.len();
    while left > 0 {
        let got = post(
            http,
            claim.clone(),
            json!({"worker": "bench-sse", "max": 50}),
        )
        .await?;
        let claimed = got["jobs"].as_array().cloned().unwrap_or_default();
        if claimed.is_empty() {
            continue;
        }
        let batch: Vec<Value> = claimed
            .iter()
            .map(|j| json!({"id": j["id"], "lease": j["lease"]}))
            .collect();
        {
            let now = Instant::now();
            let mut s = sent
                .lock()
                .map_err(|_| anyhow::anyhow!("a bench lock was poisoned"))?;
            for j in &claimed {
                s.insert(j["id"].as_i64().unwrap_or_default(), now);
            }
        }
        post(http, complete.clone(), json!({ "jobs": batch })).await?;
        left -= claimed.len();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut latencies = Vec::with_capacity(ids.len());
    while let Some(r) = readers.join_next().await {
        if let Some(ms) = r.context("a stream reader panicked")?? {
            latencies.push(ms);
        }
    }
    Ok((latencies, before, with))
}

/// This process's resident memory, in MB (Linux).
fn rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
