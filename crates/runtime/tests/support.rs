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
