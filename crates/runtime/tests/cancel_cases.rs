//! Cancel sticks: a cancel request survives a retry that beat it to the
//! node, and a job cancelled while it waits in a node's buffer never starts
//! (review M2).

use std::time::Duration;

use capstan_core::{ErrorClass, JobState, NewJob, NodeId, RetryPolicy};
use capstan_runtime::{Client, Config, JobContext, JobError, Workers};
use capstan_store::jobs::CancelOutcome;
use capstan_store_conformance::{Faults, Harness};
use serde_json::json;

use crate::support::{Gates, client, config, enqueue_ids, faulty, gated, until, wait_for_state};

/// The handler fails (retryably) before its node hears of the cancel (on
/// SQLite, another process's cancel is heard at the next heartbeat): the job
/// ends cancelled anyway, and never runs again.
pub(crate) async fn a_cancel_heard_too_late_still_ends_the_job<H: Harness>(h: &H) {
    let mut cfg = Config {
        heartbeat_interval: Duration::from_secs(5),
        node_timeout: Duration::from_secs(25),
        ..config()
    };
    // A retry would run it again at once.
    cfg.retry.default = RetryPolicy::exponential(5, Duration::ZERO, 2.0);
    let c = client(h, cfg);
    let gates = Gates::default();
    let id = c
        .enqueue(NewJob::new("fail-when-open", json!({"gate": "g"})))
        .await
        .unwrap()
        .id;
    let node = c.node(gates.workers()).unwrap().start();
    gates.started("g", 1).await;
    // Cancelled from another process.
    let other = Client::new(h.connect_again().await).with_clock(c.clock().clone());
    assert!(matches!(
        other.cancel(id).await.unwrap(),
        CancelOutcome::Requested(_)
    ));
    gates.open("g");
    let j = wait_for_state(&c, id, JobState::Cancelled).await;
    assert_eq!(gates.runs("g"), 1, "not run again");
    assert_eq!(j.errors.last().unwrap().class, ErrorClass::Cancelled);
    node.shutdown().await.unwrap();
}

/// A job cancelled while it waits in the buffer behind a handler that does
/// not return ends cancelled meanwhile, not only once a slot frees: the
/// producer looks through its whole buffer while every slot is taken.
pub(crate) async fn a_job_cancelled_behind_a_busy_slot_ends_while_the_slot_is_taken<H: Harness>(
    h: &H,
) {
    let mut cfg = config().with_node_id(NodeId("n".into()));
    cfg.queues[0].concurrency = 1;
    cfg.prefetch_min = 1; // a job held in the buffer behind the running one
    let c = client(h, cfg);
    let gates = Gates::default();
    let a = c.enqueue(gated("a").with_priority(1)).await.unwrap().id;
    let b = c.enqueue(gated("b")).await.unwrap().id;
    let node = c.node(gates.workers()).unwrap().start();
    gates.started("a", 1).await;
    wait_for_state(&c, b, JobState::Running).await; // claimed, buffered
    assert!(matches!(
        c.cancel(b).await.unwrap(),
        CancelOutcome::Requested(_)
    ));
    let j = wait_for_state(&c, b, JobState::Cancelled).await;
    assert_eq!(gates.runs("b"), 0, "never ran");
    assert_eq!(j.errors.last().unwrap().class, ErrorClass::Cancelled);
    assert_eq!(
        c.job(a).await.unwrap().unwrap().state,
        JobState::Running,
        "ended while the slot was still taken"
    );
    gates.open("a");
    wait_for_state(&c, a, JobState::Completed).await;
    node.shutdown().await.unwrap();
}

/// A job cancelled while it waits in its node's buffer ends cancelled
/// without running.
pub(crate) async fn a_job_cancelled_in_the_buffer_never_starts<H: Harness>(h: &H) {
    let mut cfg = config().with_node_id(NodeId("n".into()));
    cfg.queues[0].concurrency = 1;
    cfg.prefetch_min = 1; // a job held in the buffer behind the running one
    let c = client(h, cfg.clone());
    let faults = Faults::default();
    let beating = faulty(h, h.store().clone(), &faults, cfg);
    let gates = Gates::default();
    gates.open("b");
    let a = c.enqueue(gated("a").with_priority(1)).await.unwrap().id;
    let b = c.enqueue(gated("b")).await.unwrap().id;
    let node = beating.node(gates.workers()).unwrap().start();
    gates.started("a", 1).await;
    wait_for_state(&c, b, JobState::Running).await; // claimed, buffered
    assert!(matches!(
        c.cancel(b).await.unwrap(),
        CancelOutcome::Requested(_)
    ));
    // The node has heard of it once a beat begun after the request is done
    // (the notification may come sooner; a beat reads requests anyway).
    let beats = faults.calls("heartbeat_node");
    until("a beat after the cancel", || {
        faults.calls("heartbeat_node") >= beats + 2
    })
    .await;
    gates.open("a");
    wait_for_state(&c, a, JobState::Completed).await;
    let j = wait_for_state(&c, b, JobState::Cancelled).await;
    assert_eq!(gates.runs("b"), 0, "never started");
    assert_eq!(j.errors.last().unwrap().class, ErrorClass::Cancelled);
    node.shutdown().await.unwrap();
}

/// A handler told to stop that still finishes its work within
/// `cancel_grace` keeps it: the job completes with the handler's result
/// (the work was done; throwing it away would only run it again). One that
/// gives up instead ends cancelled.
pub(crate) async fn a_handler_that_finishes_its_work_after_a_cancel_keeps_it<H: Harness>(h: &H) {
    let c = client(
        h,
        Config {
            cancel_grace: Duration::from_secs(3),
            ..config()
        },
    );
    let mut w = Workers::new();
    w.register_fn("saves-on-cancel", |ctx: JobContext, args| async move {
        ctx.cancelled().await;
        // The rest of the work, well within the grace.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if args["save"] == true {
            Ok(json!(["saved", ctx.is_cancelled()]))
        } else {
            Err(JobError::retryable("stopped"))
        }
    })
    .unwrap();
    let ids: Vec<_> = enqueue_ids(
        &c,
        vec![
            NewJob::new("saves-on-cancel", json!({"save": true})),
            NewJob::new("saves-on-cancel", json!({"save": false})),
        ],
    )
    .await;
    let node = c.node(w).unwrap().start();
    for id in &ids {
        wait_for_state(&c, *id, JobState::Running).await;
        c.cancel(*id).await.unwrap();
    }
    let saved = wait_for_state(&c, ids[0], JobState::Completed).await;
    assert_eq!(saved.result, Some(json!(["saved", true])));
    let gave_up = wait_for_state(&c, ids[1], JobState::Cancelled).await;
    assert_eq!(gave_up.errors.last().unwrap().class, ErrorClass::Cancelled);
    node.shutdown().await.unwrap();
}

/// A cancel sent from another process stops the running handler: on
/// PostgreSQL through the notification, on SQLite (no notification crosses
/// processes) through the node's next heartbeat, which reads the request.
pub(crate) async fn a_cancel_from_another_process_stops_the_running_handler<H: Harness>(h: &H) {
    let c = client(h, config());
    let id = c
        .enqueue(NewJob::new("capstan.sleep", json!({"ms": 600_000})))
        .await
        .unwrap()
        .id;
    let node = c.node(Workers::new()).unwrap().start();
    wait_for_state(&c, id, JobState::Running).await;
    let other = Client::new(h.connect_again().await).with_clock(c.clock().clone());
    assert!(matches!(
        other.cancel(id).await.unwrap(),
        CancelOutcome::Requested(_)
    ));
    let j = wait_for_state(&c, id, JobState::Cancelled).await;
    assert_eq!(j.errors.last().unwrap().class, ErrorClass::Cancelled);
    assert_eq!(j.attempt, 1);
    node.shutdown().await.unwrap();
}
