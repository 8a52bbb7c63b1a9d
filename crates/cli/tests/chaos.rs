//! The fault-injection suite, with real binaries and a real database.
//!
//! PostgreSQL: three `capstan serve` nodes share a cluster of the test's own
//! while at least 10,000 mixed jobs (fast, slow, failing, timing out) run;
//! nodes are SIGKILLed at random and restarted, under the same node id or a
//! new one; the server is crashed (`pg_ctl stop -m immediate`) and restarted,
//! every connection is cut (`pg_terminate_backend`), and the server is away
//! longer than the node timeout. Then: every job is in an end state, every
//! job that can complete did, no attempt count passes `max_attempts`, no job
//! was rescued from a node that was alive, and every node is alive at the end.
//!
//! SQLite: serve nodes and enqueuers in several processes on one file, some
//! SIGKILLed mid-batch; then `PRAGMA integrity_check` is ok, no acknowledged
//! enqueue is missing, and every job completes.
//!
//! `cargo test` runs a short form; the full form:
//! `CAPSTAN_CHAOS_CYCLES=40 CAPSTAN_CHAOS_JOBS=20000 cargo test --release -p capstan-cli --test tests chaos -- --nocapture`
//! prints the table the README's reliability section quotes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use capstan::store::jobs::ListJobs;
use capstan::{AnyStore, Client, ErrorClass, Job, JobState, Store};
use capstan_store_conformance::{Cluster, TempDir};
use chrono::{DateTime, Utc};

use crate::support::{signal, wait_exit, write};

/// Node timeout of the chaos nodes (see `CONFIG`).
const NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// Fast intervals, so that faults and recoveries fit in seconds, and a
/// lease grace as tight as validation allows beside them: 3 s, barely over
/// the stall a rescuer can miss (1.65 s). Before a live holder's expired
/// lease waited the holder's node timeout, this left a timed-out job's
/// finish 1.35 s past an unseen stall, which a server crash-restart
/// sometimes outlasted (a job rescued while alive).
const CONFIG: &str = r#"
[node]
heartbeat_interval = "300ms"
node_timeout = "3s"
rescue_interval = "250ms"
lease_grace = "3s"
cancel_grace = "300ms"
shutdown_grace = "2s"
poll_initial = "200ms"
poll_max = "1s"
concurrency = 40
[node.retry.default]
max_attempts = 5
base_delay = "50ms"
max_delay = "500ms"
jitter = 0.0
"#;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One `capstan serve` process and where its log goes.
struct NodeProc {
    id: String,
    child: Child,
    log: PathBuf,
}

impl NodeProc {
    /// The last `n` lines of the node's log.
    fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// SIGTERM each node in turn, and a clean exit within 30 s; else the test
/// fails with the end of every node's log (what they were waiting for).
async fn stop_all(nodes: &mut [NodeProc]) {
    for i in 0..nodes.len() {
        signal(&nodes[i].child, "TERM");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = nodes[i].child.try_wait().expect("try_wait") {
                break status;
            }
            if tokio::time::Instant::now() > deadline {
                let logs: Vec<String> = nodes
                    .iter()
                    .map(|n| format!("--- {} ({}):\n{}", n.id, n.log.display(), n.log_tail(30)))
                    .collect();
                for n in nodes.iter_mut() {
                    let _ = n.child.kill();
                }
                panic!(
                    "node {} did not stop within 30 s of SIGTERM; the end of each node's log:\n{}",
                    nodes[i].id,
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            status.success(),
            "node {} stopped with {status}",
            nodes[i].id
        );
    }
}

/// A process's life: started, and stopped (if it was).
type Span = (DateTime<Utc>, Option<DateTime<Utc>>);

/// When each node id had a live process.
#[derive(Default)]
struct Lives {
    spans: BTreeMap<String, Vec<Span>>,
}

impl Lives {
    fn started(&mut self, id: &str) {
        self.spans
            .entry(id.to_owned())
            .or_default()
            .push((Utc::now(), None));
    }

    fn stopped(&mut self, id: &str) {
        if let Some(last) = self.spans.get_mut(id).and_then(|s| s.last_mut()) {
            last.1 = Some(Utc::now());
        }
    }

    /// One process under `id` ran through all of `[from, to]`.
    fn alive_throughout(&self, id: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.spans.get(id).is_some_and(|spans| {
            spans
                .iter()
                .any(|(s, e)| *s <= from && e.is_none_or(|e| e >= to))
        })
    }
}

fn spawn_node(bin: &Path, url: &str, dir: &Path, id: &str, n: usize) -> NodeProc {
    let log = dir.join(format!("{id}-{n}.log"));
    let child = Command::new(bin)
        .current_dir(dir)
        .env("CAPSTAN_DATABASE_URL", url)
        .env("CAPSTAN_LOG", "warn,capstan_runtime=info")
        .env("NO_COLOR", "1")
        .args(["serve", "--no-http", "--node-id", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start capstan serve");
    NodeProc {
        id: id.to_owned(),
        child,
        log,
    }
}

/// The job lines: mostly fast, some slow, some failing, some timing out.
fn job_lines(jobs: usize) -> String {
    (0..jobs)
        .map(|i| match i % 20 {
            0..=13 => format!("{{\"kind\":\"capstan.noop\",\"args\":{{\"i\":{i}}}}}\n"),
            14..=16 => format!(
                "{{\"kind\":\"capstan.sleep\",\"args\":{{\"ms\":{},\"i\":{i}}}}}\n",
                20 + (i * 37) % 400
            ),
            17..=18 => format!(
                "{{\"kind\":\"capstan.fail\",\"args\":{{\"message\":\"boom {i}\"}},\"max_attempts\":3}}\n"
            ),
            _ => format!(
                "{{\"kind\":\"capstan.sleep\",\"args\":{{\"ms\":5000,\"i\":{i}}},\"timeout\":\"200ms\",\"max_attempts\":2}}\n"
            ),
        })
        .collect()
}

/// A tiny deterministic random source (the test needs no crate for it).
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn all_jobs(client: &Client<AnyStore>) -> Vec<Job> {
    client
        .list_jobs(&ListJobs {
            limit: u32::MAX,
            ..ListJobs::default()
        })
        .await
        .expect("list jobs")
}

/// The leases of `node` running now.
async fn held_by(client: &Client<AnyStore>, node: &str) -> BTreeSet<(i64, String)> {
    client
        .list_jobs(&ListJobs {
            state: Some(JobState::Running),
            limit: u32::MAX,
            ..ListJobs::default()
        })
        .await
        .unwrap_or_default()
        .iter()
        .filter(|j| j.node_id.as_ref().is_some_and(|n| n.0 == node))
        .filter_map(|j| Some((j.id.0, j.lease_token.clone()?.0)))
        .collect()
}

/// The table row of one chaos run.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) cycles: usize,
    pub(crate) jobs: usize,
    pub(crate) lost: usize,
    pub(crate) not_completed: usize,
    pub(crate) over_attempts: usize,
    pub(crate) rescued_while_alive: usize,
    pub(crate) rescued_after_kill: usize,
    pub(crate) fenced_rejections: usize,
    pub(crate) max_recovery: Duration,
}

impl Report {
    fn print(&self, backend: &str) {
        println!(
            "| backend | cycles | jobs | lost | completable not completed | attempts > max | rescued while alive | rescued after a kill | fenced finishes refused | max recovery after a kill |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {backend} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
            self.cycles,
            self.jobs,
            self.lost,
            self.not_completed,
            self.over_attempts,
            self.rescued_while_alive,
            self.rescued_after_kill,
            self.fenced_rejections,
            self.max_recovery.as_secs_f64()
        );
    }
}

/// Waits (up to 5 min) until every job is finished. A failed count (the
/// database may still be coming back) is no answer, nor is an empty one.
async fn until_nothing_waits(client: &Client<AnyStore>) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let counts = client.queue_counts().await.unwrap_or_default();
        let waiting: u64 = counts
            .iter()
            .map(|c| c.scheduled + c.available + c.running + c.retryable)
            .sum();
        if waiting == 0 && !counts.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "jobs never finished: {counts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node a rescue error names (`node X …`).
fn rescued_node(message: &str) -> Option<&str> {
    let rest = &message[message.find("node ")? + 5..];
    rest.split_whitespace().next()
}

pub(crate) async fn nodes_survive_kills_crashes_cuts_and_an_outage_on_postgres() {
    let cycles = env_or("CAPSTAN_CHAOS_CYCLES", 3);
    let jobs = env_or("CAPSTAN_CHAOS_JOBS", 10_000);
    let cluster = Cluster::start("chaos").unwrap_or_else(|e| {
        panic!("the chaos test runs a PostgreSQL cluster of its own, so it needs initdb and pg_ctl: {e}")
    });
    cluster.create_database("chaos").await.unwrap();
    let url = cluster.url("chaos");
    let dir = TempDir::new("chaos");
    write(&dir, "capstan.toml", CONFIG);
    let bin = Path::new(env!("CARGO_BIN_EXE_capstan"));
    let file = write(&dir, "jobs.jsonl", &job_lines(jobs));
    let migrated = Command::new(bin)
        .current_dir(dir.path())
        .env("CAPSTAN_DATABASE_URL", &url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let out = Command::new(bin)
        .current_dir(dir.path())
        .env("CAPSTAN_DATABASE_URL", &url)
        .args(["enqueue", "--batch", file.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = AnyStore::connect(&url).await.unwrap();
    let client = Client::new(store.clone());

    let mut lives = Lives::default();
    let mut nodes: Vec<NodeProc> = Vec::new();
    let mut spawned = 0;
    for id in ["chaos-a", "chaos-b", "chaos-c"] {
        spawned += 1;
        nodes.push(spawn_node(bin, &url, dir.path(), id, spawned));
        lives.started(id);
    }
    let mut logs: Vec<PathBuf> = nodes.iter().map(|n| n.log.clone()).collect();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let mut report = Report {
        cycles,
        jobs,
        ..Report::default()
    };
    // The server faults come at fixed cycles among the kills.
    let faults = ["crash", "cut", "outage"];
    let steps = cycles + faults.len();
    for step in 0..steps {
        tokio::time::sleep(Duration::from_millis(300 + dice.roll(700) as u64)).await;
        let fault = (step % (steps / faults.len()).max(1) == 1)
            .then(|| faults[(step / (steps / faults.len()).max(1)).min(faults.len() - 1)]);
        match fault {
            Some("crash") => {
                cluster.stop(true).unwrap();
                cluster.start_again().unwrap();
            }
            Some("cut") => {
                cluster.terminate_backends("chaos").await.unwrap();
            }
            Some("outage") => {
                cluster.stop(false).unwrap();
                tokio::time::sleep(NODE_TIMEOUT + NODE_TIMEOUT / 2).await;
                cluster.start_again().unwrap();
            }
            _ => {
                // Kill a random node; restart it under its id or a new one.
                let victim = dice.roll(nodes.len());
                let id = nodes[victim].id.clone();
                signal(&nodes[victim].child, "KILL");
                let _ = wait_exit(&mut nodes[victim].child, Duration::from_secs(10)).await;
                lives.stopped(&id);
                let killed_at = Instant::now();
                let held = held_by(&client, &id).await;
                let new_id = if dice.roll(2) == 0 {
                    id.clone()
                } else {
                    format!("{id}-{step}")
                };
                spawned += 1;
                nodes[victim] = spawn_node(bin, &url, dir.path(), &new_id, spawned);
                lives.started(&new_id);
                logs.push(nodes[victim].log.clone());
                // Recovered once none of its leases is still running.
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let now_held = held_by(&client, &id).await;
                    if held.intersection(&now_held).next().is_none() {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "the killed node's jobs were never rescued"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                report.max_recovery = report.max_recovery.max(killed_at.elapsed());
            }
        }
        report.cycles = cycles;
    }
    // Let it finish.
    until_nothing_waits(&client).await;
    for n in &mut nodes {
        assert!(
            n.child.try_wait().unwrap().is_none(),
            "node {} died on its own: {}",
            n.id,
            std::fs::read_to_string(&n.log).unwrap_or_default()
        );
    }
    let all = all_jobs(&client).await;
    report.lost =
        jobs.saturating_sub(all.len()) + all.iter().filter(|j| !j.state.is_finished()).count();
    for j in &all {
        let completable =
            j.kind == "capstan.noop" || (j.kind == "capstan.sleep" && j.timeout_ms.is_none());
        if completable && j.state != JobState::Completed {
            report.not_completed += 1;
        }
        if j.attempt > j.max_attempts {
            report.over_attempts += 1;
        }
        for e in j.errors.iter().filter(|e| e.class == ErrorClass::Rescued) {
            let Some(node) = rescued_node(&e.message) else {
                continue;
            };
            let from = e.at - chrono::Duration::from_std(NODE_TIMEOUT).unwrap();
            if lives.alive_throughout(node, from, e.at) {
                report.rescued_while_alive += 1;
                eprintln!(
                    "rescued while alive: job {} at {}: {}",
                    j.id, e.at, e.message
                );
            } else {
                report.rescued_after_kill += 1;
            }
        }
    }
    stop_all(&mut nodes).await;
    report.fenced_rejections = logs
        .iter()
        .map(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .matches("finish rejected")
                .count()
        })
        .sum();
    report.print("postgres");
    store.close().await;
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(report.not_completed, 0, "{report:?}");
    assert_eq!(report.over_attempts, 0, "{report:?}");
    assert_eq!(report.rescued_while_alive, 0, "{report:?}");
}

pub(crate) async fn processes_killed_mid_batch_leave_sqlite_whole() {
    let dir = TempDir::new("chaos-sqlite");
    let db = dir.path().join("capstan.db");
    let url = format!("sqlite://{}", db.display());
    write(&dir, "capstan.toml", CONFIG);
    let bin = Path::new(env!("CARGO_BIN_EXE_capstan"));
    let run = |args: &[&str]| {
        Command::new(bin)
            .current_dir(dir.path())
            .env("CAPSTAN_DATABASE_URL", &url)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["migrate"]).status.success());
    let mut nodes: Vec<NodeProc> = (0..2)
        .map(|i| spawn_node(bin, &url, dir.path(), &format!("lite-{i}"), i))
        .collect();
    // Acknowledged enqueues, one at a time, from two processes in turn…
    let mut acked = BTreeSet::new();
    // …and batches, some killed mid-transaction.
    let batch = write(&dir, "batch.jsonl", &job_lines(2_000));
    let mut killed_batches = 0;
    for round in 0..4 {
        let mut enqueuer = Command::new(bin)
            .current_dir(dir.path())
            .env("CAPSTAN_DATABASE_URL", &url)
            .args(["enqueue", "--batch", batch.to_str().unwrap(), "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for i in 0..10 {
            let out = run(&[
                "enqueue",
                "capstan.noop",
                "--args",
                &format!("{{\"r\":{round},\"i\":{i}}}"),
                "--json",
            ]);
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                acked.insert(v["id"].as_i64().unwrap());
            }
        }
        if round % 2 == 0 {
            signal(&enqueuer, "KILL");
            killed_batches += 1;
        }
        let _ = wait_exit(&mut enqueuer, Duration::from_secs(60)).await;
        // Kill a node mid-run and start it again.
        let victim = round % nodes.len();
        signal(&nodes[victim].child, "KILL");
        let _ = wait_exit(&mut nodes[victim].child, Duration::from_secs(10)).await;
        let id = nodes[victim].id.clone();
        nodes[victim] = spawn_node(bin, &url, dir.path(), &id, 10 + round);
    }
    let store = AnyStore::connect(&url).await.unwrap();
    let client = Client::new(store.clone());
    until_nothing_waits(&client).await;
    stop_all(&mut nodes).await;
    let all = all_jobs(&client).await;
    let ids: BTreeSet<i64> = all.iter().map(|j| j.id.0).collect();
    let missing: Vec<_> = acked.difference(&ids).collect();
    assert!(
        missing.is_empty(),
        "acknowledged enqueues missing: {missing:?}"
    );
    // A batch is all or nothing: whole batches only.
    let batch_jobs = all.iter().filter(|j| j.args.get("r").is_none()).count();
    assert_eq!(batch_jobs % 2_000, 0, "a partial batch was written");
    assert!(killed_batches > 0);
    assert!(all.iter().all(|j| j.attempt <= j.max_attempts));
    store.close().await;
    let check = capstan::sqlite::SqliteStore::connect(&url).await.unwrap();
    assert_eq!(
        check.integrity_check().await.expect("integrity_check"),
        "ok"
    );
}
