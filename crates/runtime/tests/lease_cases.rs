//! Leases cover the whole run: a job started from the local buffer gets a
//! lease for its whole timeout, a handler never outlives the lease the
//! database knows, and a handler whose job was taken is told to stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_core::{Clock, ErrorClass, JobState, ManualClock, NewJob, NodeId};
use capstan_runtime::{Client, Config, JobContext, Workers};
use capstan_store_conformance::{Faults, FaultyStore, Harness};
use serde_json::{Value, json};

use crate::support::{
    Gates, advance_while_beating, client, config, gated, until, wait_for_job, wait_for_state,
};

fn one_at_a_time(node: &str) -> Config {
    let mut cfg = Config {
        // Buffered jobs start without a new lease for (13 s - 0.2 s) / 2.
        lease_grace: Duration::from_secs(13),
        ..config().with_node_id(NodeId(node.into()))
    };
    cfg.queues[0].concurrency = 1;
    // Hold one job ready behind the running one, however slow the jobs:
    // these cases test what the buffer guarantees.
    cfg.prefetch_min = 1;
    cfg
}

/// On a concurrency-1 queue the next job always waits in the buffer for the
/// one before: once it waited longer than its lease's grace allows, it
/// starts only after its lease was extended, so it cannot be rescued from
/// under its live handler (review H1).
pub(crate) async fn a_job_that_waited_in_the_buffer_starts_with_a_lease_for_its_whole_timeout<
    H: Harness,
>(
    h: &H,
) {
    let c = client(h, one_at_a_time("n"));
    let gates = Gates::default();
    let a = c
        .enqueue(
            gated("a")
                .with_priority(1)
                .with_timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .id;
    let b = c
        .enqueue(gated("b").with_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .id;
    let node = c.node(gates.workers()).unwrap().start();
    gates.started("a", 1).await;
    // b was claimed with a (free slot + as many again) and waits, buffered.
    let claimed = wait_for_job(&c, b, Duration::from_secs(20), |j| {
        j.state == JobState::Running
    })
    .await;
    let t0 = claimed.attempted_at.unwrap();
    assert_eq!(
        claimed.lease_expires_at,
        Some(t0 + chrono::Duration::seconds(33)),
        "20 s timeout + 13 s grace from the claim"
    );
    advance_while_beating(&c, h.clock(), &["n"], Duration::from_secs(7)).await;
    gates.open("a");
    wait_for_state(&c, a, JobState::Completed).await;
    gates.started("b", 1).await;
    let started = c.job(b).await.unwrap().unwrap();
    assert_eq!(
        started.lease_expires_at,
        Some(h.clock().now() + chrono::Duration::seconds(33)),
        "its lease was extended when it started, to cover its whole timeout"
    );
    // Past the claim's lease, within the start's: not rescued.
    advance_while_beating(&c, h.clock(), &["n"], Duration::from_secs(28)).await;
    let r = crate::support::rescue(&c).await;
    assert!(r.retried.is_empty(), "{r:?}");
    gates.open("b");
    let done = wait_for_state(&c, b, JobState::Completed).await;
    assert_eq!(done.attempt, 1);
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert_eq!(gates.runs("b"), 1);
    node.shutdown().await.unwrap();
}

/// A buffered job whose lease cannot be extended when it should start (the
/// database does not answer) waits, unstarted, and starts once it can be.
pub(crate) async fn a_buffered_job_never_starts_without_a_lease<H: Harness>(h: &H) {
    let faults = Faults::default();
    let c = Client::with_config(
        FaultyStore::new(h.store().clone(), faults.clone()),
        one_at_a_time("n"),
    )
    .unwrap()
    .with_clock(Arc::new(h.clock().clone()) as Arc<dyn Clock>);
    let gates = Gates::default();
    gates.open("b");
    let a = c.enqueue(gated("a").with_priority(1)).await.unwrap().id;
    let b = c
        .enqueue(gated("b").with_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .id;
    let node = c.node(gates.workers()).unwrap().start();
    gates.started("a", 1).await;
    wait_for_job(&c, b, Duration::from_secs(20), |j| {
        j.state == JobState::Running
    })
    .await;
    advance_while_beating(&c, h.clock(), &["n"], Duration::from_secs(7)).await;
    faults.fail_next("extend_leases", 2);
    gates.open("a");
    wait_for_state(&c, a, JobState::Completed).await;
    // Two extensions fail, half a second apart: b waits meanwhile.
    until("the extensions to fail", || {
        faults.answered("extend_leases") >= 2
    })
    .await;
    assert_eq!(
        gates.runs("b"),
        0,
        "started without a lease for its timeout"
    );
    let done = wait_for_state(&c, b, JobState::Completed).await;
    assert!(faults.calls("extend_leases") >= 3);
    assert_eq!((done.attempt, gates.runs("b")), (1, 1));
    node.shutdown().await.unwrap();
}

/// A buffered job that waited half its lease is handed back (attempt given
/// back) rather than hoarded, and runs from a fresh claim. On the manual
/// clock: no real-time margin (issue 17).
pub(crate) async fn a_buffered_job_that_waits_half_its_lease_is_handed_back<H: Harness>(h: &H) {
    let c = client(h, one_at_a_time("n"));
    let gates = Gates::default();
    gates.open("b");
    let a = c.enqueue(gated("a").with_priority(1)).await.unwrap().id;
    // Lease 2 s + 13 s: handed back after 7.5 s in the buffer.
    let b = c
        .enqueue(gated("b").with_timeout(Duration::from_secs(2)))
        .await
        .unwrap()
        .id;
    let node = c.node(gates.workers()).unwrap().start();
    gates.started("a", 1).await;
    let first = wait_for_job(&c, b, Duration::from_secs(20), |j| {
        j.state == JobState::Running
    })
    .await;
    advance_while_beating(&c, h.clock(), &["n"], Duration::from_secs(8)).await;
    gates.open("a");
    let done = wait_for_state(&c, b, JobState::Completed).await;
    assert_eq!(done.attempt, 1, "a hand-back burns no attempt");
    assert!(done.errors.is_empty(), "never rescued: {:?}", done.errors);
    assert!(
        done.attempted_at > first.attempted_at,
        "it ran from a second claim, not from the buffer"
    );
    assert_ne!(done.lease_token, first.lease_token);
    assert_eq!(gates.runs("b"), 1);
    let a = c.job(a).await.unwrap().unwrap();
    assert!(a.finished_at <= done.attempted_at);
    node.shutdown().await.unwrap();
}

/// A heartbeat the database did not record moves neither the timeout nor
/// the lease: the handler is still stopped at its first deadline (review LM1).
pub(crate) async fn a_heartbeat_that_failed_does_not_move_the_deadline<H: Harness>(h: &H) {
    let faults = Faults::default();
    let mut cfg = config();
    cfg.retry.default = capstan_core::RetryPolicy::exponential(1, Duration::ZERO, 2.0);
    let c = Client::with_config(FaultyStore::new(h.store().clone(), faults.clone()), cfg)
        .unwrap()
        .with_clock(Arc::new(h.clock().clone()) as Arc<dyn Clock>);
    let mut w = Workers::empty();
    w.register_fn("beats-once", |ctx: JobContext, _args| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let beat = ctx.heartbeat(None).await;
        assert!(beat.is_err(), "the fault makes it fail");
        tokio::time::sleep(Duration::from_millis(800)).await;
        Ok(json!("finished"))
    })
    .unwrap();
    faults.fail_next("extend_leases", 1);
    let id = c
        .enqueue(NewJob::new("beats-once", json!({})).with_timeout(Duration::from_secs(1)))
        .await
        .unwrap()
        .id;
    let node = c.node(w).unwrap().start();
    let j = wait_for_job(&c, id, Duration::from_secs(20), |j| j.state.is_finished()).await;
    assert_eq!(
        j.state,
        JobState::Failed,
        "stopped at 1 s, not after 1.3 s: {j:?}"
    );
    assert_eq!(j.errors[0].class, ErrorClass::Timeout);
    assert_eq!(faults.calls("extend_leases"), 1);
    node.shutdown().await.unwrap();
}

/// A handler that heartbeats after its job was rescued learns it (a
/// permanent error) and is told to stop, even if it ignores the error.
pub(crate) async fn a_fenced_heartbeat_tells_the_handler_to_stop<H: Harness>(h: &H) {
    let seen = stale_node_run(h, true).await;
    assert_eq!(seen, vec!["fenced, then told to stop"]);
}

/// A handler whose job was taken from its node (rescued while the node was
/// thought dead) is told to stop at the node's next heartbeat, even if it
/// never heartbeats itself.
pub(crate) async fn a_handler_whose_job_was_taken_is_told_to_stop<H: Harness>(h: &H) {
    let seen = stale_node_run(h, false).await;
    assert_eq!(seen, vec!["told to stop"]);
}

/// Run one job on node `slow`, whose clock stands still, rescue it from
/// there (it looks dead on the shared clock), let the handler go on, and
/// return what the handler saw.
async fn stale_node_run<H: Harness>(h: &H, heartbeat: bool) -> Vec<&'static str> {
    let c = client(h, config());
    let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let go = Arc::new(tokio::sync::Notify::new());
    let mut w = Workers::empty();
    {
        let (seen, go) = (seen.clone(), go.clone());
        w.register_fn("stale", move |ctx: JobContext, _args| {
            let (seen, go) = (seen.clone(), go.clone());
            async move {
                go.notified().await;
                let mut what = "told to stop";
                if heartbeat {
                    let beat = ctx.heartbeat(None).await;
                    assert!(beat.is_err(), "fenced");
                    what = "fenced, then told to stop";
                }
                // Within the cancel grace (this config: 200 ms), with room.
                let stopped = tokio::time::timeout(Duration::from_secs(5), ctx.cancelled())
                    .await
                    .is_ok();
                seen.lock()
                    .unwrap()
                    .push(if stopped { what } else { "never told" });
                Ok(Value::Null)
            }
        })
        .unwrap();
    }
    let mut cfg = config().with_node_id(NodeId("slow".into()));
    cfg.queues[0].concurrency = 1;
    if heartbeat {
        // The node's own heartbeat must not be the one that stops it.
        cfg.heartbeat_interval = Duration::from_secs(8);
        cfg.node_timeout = Duration::from_secs(25);
    }
    let frozen = Arc::new(ManualClock::new(h.clock().now()));
    let slow = Client::with_config(h.store().clone(), cfg)
        .unwrap()
        .with_clock(frozen)
        .node(w)
        .unwrap()
        .start();
    let id = c.enqueue(NewJob::new("stale", json!({}))).await.unwrap().id;
    wait_for_state(&c, id, JobState::Running).await;
    h.clock().advance(Duration::from_secs(60));
    assert_eq!(crate::support::rescue(&c).await.retried, vec![id]);
    go.notify_one();
    until("the handler to report", || !seen.lock().unwrap().is_empty()).await;
    slow.abort().await;
    seen.lock().unwrap().clone()
}

/// A claim that committed but whose reply never reached its node (the
/// connection was cut, the server crashed) leaves jobs held by a live node
/// that knows nothing of them: the node's heartbeat hands them back, and
/// they run, instead of waiting out a whole lease.
pub(crate) async fn a_claim_whose_reply_was_lost_is_handed_back<H: Harness>(h: &H) {
    let c = client(h, config().with_node_id(NodeId("n".into())));
    let node = c.node(Workers::new()).unwrap().start();
    advance_while_beating(&c, h.clock(), &["n"], Duration::ZERO).await;
    let id = c
        .enqueue(NewJob::new("capstan.noop", json!({})).with_queue("elsewhere"))
        .await
        .unwrap()
        .id;
    // The "lost" claim: made under the node's id, its reply thrown away.
    use capstan_store::JobStore;
    let lost = c
        .store()
        .claim(&capstan_store::jobs::Claim {
            queue: "elsewhere".into(),
            kinds: None,
            limit: 1,
            node: NodeId("n".into()),
            default_timeout: Duration::from_secs(3600),
            lease_grace: Duration::from_secs(10),
            now: Some(h.clock().now()),
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(lost.len(), 1);
    // However many beats see it, a young claim is left alone: its reply
    // may still be on its way to the producer.
    let young = c.config().stray_after() - Duration::from_secs(1);
    advance_while_beating(&c, h.clock(), &["n"], young).await;
    advance_while_beating(&c, h.clock(), &["n"], Duration::from_millis(500)).await;
    let j = c.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Running, "handed back while young");
    // The node serves `default`, not `elsewhere`: once handed back, the job
    // waits there, available, its attempt given back.
    advance_while_beating(&c, h.clock(), &["n"], Duration::from_secs(2)).await;
    let j = wait_for_job(&c, id, Duration::from_secs(20), |j| {
        j.state == JobState::Available
    })
    .await;
    assert_eq!(j.attempt, 0, "a hand-back burns no attempt");
    assert!(j.errors.is_empty(), "not rescued: {:?}", j.errors);
    node.shutdown().await.unwrap();
}
