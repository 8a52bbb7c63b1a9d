//! Helpers for the runtime tests.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::{Clock, Job, JobId, JobState};
use capstan_runtime::{Client, Config, QueueConfig};
use capstan_store::Store;
use capstan_store_conformance::Harness;

/// A config for tests: fast intervals, one `default` queue.
pub(crate) fn config() -> Config {
    Config {
        queues: vec![QueueConfig::new("default").with_concurrency(20)],
        heartbeat_interval: Duration::from_millis(100),
        node_timeout: Duration::from_secs(25),
        rescue_interval: Duration::from_millis(100),
        schedule_interval: Duration::from_millis(50),
        poll_initial: Duration::from_millis(200),
        poll_max: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(5),
        cancel_grace: Duration::from_millis(200),
        ..Config::default()
    }
}

/// A client on the harness's store with `config` and the harness's manual clock.
pub(crate) fn client<H: Harness>(h: &H, config: Config) -> Client<H::Store> {
    Client::with_config(h.store().clone(), config)
        .expect("valid config")
        .with_clock(Arc::new(h.clock().clone()) as Arc<dyn Clock>)
}

/// A client of `cfg` on `store` behind `faults`, on the harness's clock.
pub(crate) fn faulty<H: Harness, S: Store>(
    h: &H,
    store: S,
    faults: &capstan_store_conformance::Faults,
    cfg: Config,
) -> Client<capstan_store_conformance::FaultyStore<S>> {
    Client::with_config(
        capstan_store_conformance::FaultyStore::new(store, faults.clone()),
        cfg,
    )
    .unwrap()
    .with_clock(Arc::new(h.clock().clone()) as Arc<dyn Clock>)
}

/// `n` no-op jobs, told apart by their args (`{"i": 0}`, `{"i": 1}`, …).
pub(crate) fn noops(n: usize) -> Vec<capstan_core::NewJob> {
    (0..n)
        .map(|i| capstan_core::NewJob::new("capstan.noop", serde_json::json!({ "i": i })))
        .collect()
}

/// Enqueue `jobs` in one batch; their ids, in order.
pub(crate) async fn enqueue_ids<S: Store>(
    c: &Client<S>,
    jobs: Vec<capstan_core::NewJob>,
) -> Vec<JobId> {
    c.enqueue_many(jobs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect()
}

/// Wait (polling every 10 ms, at most `within`) until `job` satisfies `pred`.
pub(crate) async fn wait_for_job<S: Store>(
    client: &Client<S>,
    id: JobId,
    within: Duration,
    pred: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let job = client.job(id).await.expect("get job").expect("job exists");
        if pred(&job) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} did not reach the expected condition within {within:?}: {job:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Move the shared manual clock on by `total`, in steps short enough that
/// no step looks like a stall, waiting after each until every node in
/// `beating` has beaten at the new time (a node whose beats came a stall
/// apart would give every other node a fresh node timeout).
pub(crate) async fn advance_while_beating<S: Store>(
    client: &Client<S>,
    clock: &capstan_core::ManualClock,
    beating: &[&str],
    total: Duration,
) {
    let step = Duration::from_secs(5);
    let mut moved = Duration::ZERO;
    // The first round waits for the nodes to be registered at all.
    let mut by = Duration::ZERO;
    loop {
        clock.advance(by);
        moved += by;
        let now = clock.now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let nodes = client.nodes().await.expect("list nodes");
            let beaten = beating.iter().all(|id| {
                nodes
                    .iter()
                    .any(|n| n.id.as_str() == *id && n.heartbeat_at >= now)
            });
            if beaten {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nodes {beating:?} did not beat at {now}: {nodes:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if moved >= total {
            return;
        }
        by = step.min(total - moved);
    }
}

/// Wait until `job` is in `state`.
pub(crate) async fn wait_for_state<S: Store>(
    client: &Client<S>,
    id: JobId,
    state: JobState,
) -> Job {
    wait_for_job(client, id, Duration::from_secs(20), |j| j.state == state).await
}

/// Handlers that block until the test opens their gate, and record each of
/// their runs: `gated` `{"gate": "a"}` completes with `"a"` once gate `a` is
/// open, or fails (retryable) when told to stop; `fail-when-open` fails
/// (retryable) once its gate is open.
#[derive(Clone, Default)]
pub(crate) struct Gates {
    state: Arc<std::sync::Mutex<std::collections::HashMap<String, Gate>>>,
}

#[derive(Default)]
struct Gate {
    open: bool,
    runs: Vec<capstan_core::Lease>,
}

impl Gates {
    pub(crate) fn workers(&self) -> capstan_runtime::Workers {
        let mut w = capstan_runtime::Workers::new();
        for (kind, fail) in [("gated", false), ("fail-when-open", true)] {
            let gates = self.clone();
            w.register_fn(kind, move |ctx, args| {
                let gates = gates.clone();
                async move {
                    let name = args["gate"].as_str().unwrap_or_default().to_owned();
                    gates.record(&name, ctx.lease().clone());
                    loop {
                        if gates.is_open(&name) {
                            return if fail {
                                Err(capstan_runtime::JobError::retryable("failed once opened"))
                            } else {
                                Ok(serde_json::json!(name))
                            };
                        }
                        tokio::select! {
                            () = ctx.cancelled() => {
                                return Err(capstan_runtime::JobError::retryable("told to stop"));
                            }
                            () = tokio::time::sleep(Duration::from_millis(5)) => {}
                        }
                    }
                }
            })
            .expect("register");
        }
        w
    }

    fn record(&self, gate: &str, lease: capstan_core::Lease) {
        self.state
            .lock()
            .unwrap()
            .entry(gate.to_owned())
            .or_default()
            .runs
            .push(lease);
    }

    fn is_open(&self, gate: &str) -> bool {
        self.state.lock().unwrap().get(gate).is_some_and(|g| g.open)
    }

    pub(crate) fn open(&self, gate: &str) {
        self.state
            .lock()
            .unwrap()
            .entry(gate.to_owned())
            .or_default()
            .open = true;
    }

    /// How many times a handler behind `gate` started.
    pub(crate) fn runs(&self, gate: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .get(gate)
            .map_or(0, |g| g.runs.len())
    }

    /// Wait (at most 20 s) until a handler behind `gate` started `n` times.
    pub(crate) async fn started(&self, gate: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.runs(gate) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "gate {gate} was reached {} times, not {n}",
                self.runs(gate)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A job behind gate `name`.
pub(crate) fn gated(name: &str) -> capstan_core::NewJob {
    capstan_core::NewJob::new("gated", serde_json::json!({ "gate": name }))
}

/// Wait (at most 20 s) until `cond` holds, checking every 5 ms.
pub(crate) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Promote the due jobs now, as the scheduler's pass would.
pub(crate) async fn promote<S: Store>(c: &Client<S>) -> capstan_store::jobs::PromoteReport {
    c.store()
        .promote_due(&capstan_store::jobs::PromoteDue {
            limit: 1000,
            now: c.clock().pinned(),
        })
        .await
        .expect("promote_due")
}

/// Rescue now, as a tool with no node would: each node judged by its own row.
pub(crate) async fn rescue<S: Store>(c: &Client<S>) -> capstan_store::jobs::RescueReport {
    c.store()
        .rescue(&capstan_store::jobs::Rescue {
            rescuer: None,
            limit: 1000,
            now: c.clock().pinned(),
        })
        .await
        .expect("rescue")
}

/// Delete finished jobs past the client's retention now, as the cleaner's pass would.
pub(crate) async fn clean<S: Store>(c: &Client<S>) -> u64 {
    let config = c.config();
    c.store()
        .delete_finished(&capstan_store::jobs::DeleteFinished {
            completed_after: config.retain_completed,
            failed_after: config.retain_failed,
            limit: config.clean_batch,
            now: c.clock().pinned(),
        })
        .await
        .expect("delete_finished")
}
