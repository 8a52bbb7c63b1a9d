//! Notifications: every write that makes a job runnable wakes the
//! subscribers of [`Topic::JOBS`] (enqueue, promote, rescue, restart,
//! hand-back, retry, a node that handles set-aside jobs), and a write that
//! makes none runnable wakes no one; a cancel request reaches
//! [`Topic::CONTROL`]; a topic no backend knows is carried as is.
//!
//! Each case sends a marker on a topic of its own after the setup writes and
//! reads up to it ([`settle`]): notifications arrive in commit order, so what
//! comes after the marker is the write under test's, with no sleep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use capstan_core::{Clock, ErrorClass, JobState};
use capstan_store::jobs::{
    CancelJob, CancelOutcome, InsertMany, MarkUnhandled, Outcome, PromoteDue, RetryJob,
};
use capstan_store::nodes::{HeartbeatNode, RegisterNode};
use capstan_store::{
    ControlHint, JobStore, JobsHint, NodeStore, Notification, Notifications, Received, Store,
    StoreTx, Topic,
};

use super::fixture::{
    beat_of, claim, complete, enqueue, enqueue_one, error, finish, finish_with, job, node, now,
    register, rescue,
};
use crate::Harness;

/// The suite's own topic: no backend has heard of it.
pub(crate) const PROBE: Topic = Topic::new("conformance_probe");

/// A subscriber of the jobs and control topics and of [`PROBE`].
pub(crate) async fn subscribe<H: Harness>(h: &H) -> Notifications {
    h.store()
        .subscribe(&[Topic::JOBS, Topic::CONTROL, PROBE])
        .await
        .expect("subscribe")
}

/// Send a marker and read up to it; returns the notifications before it
/// (the [`Received::Missed`] of another connection's commits left out).
pub(crate) async fn settle<H: Harness>(h: &H, rx: &mut Notifications) -> Vec<Notification> {
    static N: AtomicU64 = AtomicU64::new(0);
    let marker = format!("marker-{}", N.fetch_add(1, Ordering::Relaxed));
    h.store()
        .notify(Notification::new(PROBE, marker.clone()))
        .await
        .expect("notify");
    let mut before = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(Received::Notification(n))) if n.topic == PROBE && n.payload == marker => {
                return before;
            }
            Ok(Some(Received::Notification(n))) => before.push(n),
            Ok(Some(Received::Missed)) => {}
            Ok(None) => panic!("the store went away"),
            Err(_) => panic!("the marker {marker} never arrived: notifications are lost"),
        }
    }
}

/// Whether `got` holds a jobs hint that wakes `queue` (naming it, or any queue).
pub(crate) fn wakes(got: &[Notification], queue: &str) -> bool {
    got.iter()
        .filter(|n| n.topic == Topic::JOBS)
        .any(|n| match JobsHint::parse(&n.payload) {
            JobsHint::Queues(qs) => qs.contains(&queue),
            JobsHint::Any => true,
        })
}

/// Whether `got` holds a jobs hint that names `queue` itself.
fn names(got: &[Notification], queue: &str) -> bool {
    got.iter()
        .filter(|n| n.topic == Topic::JOBS)
        .any(|n| matches!(JobsHint::parse(&n.payload), JobsHint::Queues(qs) if qs.contains(&queue)))
}

pub async fn enqueue_wakes_subscribers<H: Harness>(h: &H) {
    let mut rx = subscribe(h).await;
    enqueue_one(h, job("k").with_queue("mail")).await;
    let got = settle(h, &mut rx).await;
    assert!(names(&got, "mail"), "the enqueue names its queue: {got:?}");
    // A batch over several queues names each.
    enqueue(h, vec![job("k").with_queue("a"), job("k").with_queue("b")]).await;
    let got = settle(h, &mut rx).await;
    assert!(names(&got, "a") && names(&got, "b"), "{got:?}");
}

pub async fn enqueue_from_another_connection_wakes_subscribers<H: Harness>(h: &H) {
    let mut rx = h.store().subscribe(&[Topic::JOBS]).await.unwrap();
    let other = h.connect_again().await;
    other
        .insert_many(&InsertMany {
            jobs: vec![job("k").with_queue("mail")],
            default_max_attempts: 3,
            now: now(h),
        })
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten();
    // PostgreSQL names the queue; SQLite's watcher sees only that the file changed.
    let ok = match &got {
        Some(Received::Notification(n)) => wakes(std::slice::from_ref(n), "mail"),
        Some(Received::Missed) => true,
        None => false,
    };
    assert!(ok, "another process's enqueue reaches this one: {got:?}");
}

pub async fn a_scheduled_job_wakes_no_producer_until_promoted<H: Harness>(h: &H) {
    let mut rx = subscribe(h).await;
    enqueue_one(
        h,
        job("k")
            .with_queue("later")
            .with_delay(Duration::from_secs(5)),
    )
    .await;
    let got = settle(h, &mut rx).await;
    assert!(
        !names(&got, "later"),
        "nothing in `later` is runnable yet: {got:?}"
    );
    h.clock().advance(Duration::from_secs(5));
    let r = h
        .store()
        .promote_due(&PromoteDue {
            limit: 10,
            now: now(h),
        })
        .await
        .unwrap();
    assert_eq!(r.promoted, 1);
    let got = settle(h, &mut rx).await;
    assert!(names(&got, "later"), "promotion wakes its queue: {got:?}");
}

pub async fn a_rescue_wakes_the_queues_it_made_runnable<H: Harness>(h: &H) {
    let dead = node("dead");
    register(h, &dead).await;
    enqueue_one(h, job("k")).await;
    claim(h, "default", 1, &dead).await;
    let mut rx = subscribe(h).await;
    settle(h, &mut rx).await;
    h.clock().advance(Duration::from_secs(31));
    assert_eq!(rescue(h).await.retried.len(), 1);
    let got = settle(h, &mut rx).await;
    assert!(wakes(&got, "default"), "{got:?}");
}

pub async fn a_restarted_node_wakes_the_queues_of_the_jobs_it_reclaimed<H: Harness>(h: &H) {
    let n = node("web-1");
    register(h, &n).await;
    enqueue_one(h, job("k")).await;
    claim(h, "default", 1, &n).await;
    let mut rx = subscribe(h).await;
    settle(h, &mut rx).await;
    h.clock().advance(Duration::from_secs(31));
    let r = h
        .store()
        .register_node(&RegisterNode {
            beat: HeartbeatNode {
                incarnation: "2".into(),
                ..beat_of(h, &n)
            },
            takeover: None,
        })
        .await
        .unwrap();
    assert_eq!(r.reclaimed, 1);
    let got = settle(h, &mut rx).await;
    assert!(wakes(&got, "default"), "{got:?}");
}

pub async fn a_hand_back_and_an_immediate_retry_wake_their_queue<H: Harness>(h: &H) {
    let n = node("n1");
    register(h, &n).await;
    enqueue(h, vec![job("k"), job("k")]).await;
    let claimed = claim(h, "default", 2, &n).await;
    let mut rx = subscribe(h).await;
    settle(h, &mut rx).await;
    finish(h, vec![finish_with(&claimed[0], Outcome::HandBack)]).await;
    let got = settle(h, &mut rx).await;
    assert!(wakes(&got, "default"), "a hand-back wakes: {got:?}");
    finish(
        h,
        vec![finish_with(
            &claimed[1],
            Outcome::Retry {
                error: error(ErrorClass::Retryable, "again"),
                delay: Duration::ZERO,
            },
        )],
    )
    .await;
    let got = settle(h, &mut rx).await;
    assert!(wakes(&got, "default"), "an immediate retry wakes: {got:?}");
}

pub async fn a_retry_by_hand_wakes_its_queue<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_queue("ops").with_max_attempts(1)).await;
    let n = node("n1");
    register(h, &n).await;
    let mut p = super::fixture::claim_params(h, "ops", 1, &n);
    p.kinds = None;
    let j = h.store().claim(&p).await.unwrap().remove(0);
    finish(
        h,
        vec![finish_with(
            &j,
            Outcome::Fail {
                error: error(ErrorClass::Permanent, "no"),
            },
        )],
    )
    .await;
    let mut rx = subscribe(h).await;
    settle(h, &mut rx).await;
    let j = h
        .store()
        .retry_job(&RetryJob { id, now: now(h) })
        .await
        .unwrap();
    assert_eq!(j.state, JobState::Available);
    let got = settle(h, &mut rx).await;
    assert!(names(&got, "ops"), "{got:?}");
}

pub async fn a_node_that_handles_set_aside_jobs_wakes_their_queue<H: Harness>(h: &H) {
    let n = node("n1");
    register(h, &n).await;
    let t0 = h.clock().now();
    enqueue_one(h, job("late.kind")).await;
    let set_aside = h
        .store()
        .mark_unhandled(&MarkUnhandled {
            queue: "default".into(),
            limit: 10,
            healthy_since: t0,
            now: now(h),
        })
        .await
        .unwrap();
    assert_eq!(set_aside, 1);
    let mut rx = subscribe(h).await;
    settle(h, &mut rx).await;
    h.store()
        .register_node(&RegisterNode {
            beat: HeartbeatNode {
                kinds: vec!["late.kind".into()],
                ..beat_of(h, &node("n2"))
            },
            takeover: None,
        })
        .await
        .unwrap();
    let got = settle(h, &mut rx).await;
    assert!(wakes(&got, "default"), "{got:?}");
}

pub async fn a_completion_wakes_no_one<H: Harness>(h: &H) {
    let n = node("n1");
    register(h, &n).await;
    enqueue_one(h, job("k")).await;
    let j = claim(h, "default", 1, &n).await.remove(0);
    let mut rx = subscribe(h).await;
    settle(h, &mut rx).await;
    finish(h, vec![complete(&j)]).await;
    let got = settle(h, &mut rx).await;
    assert!(
        got.iter().all(|n| n.topic != Topic::JOBS),
        "nothing became runnable: {got:?}"
    );
}

pub async fn a_cancel_request_reaches_the_control_topic<H: Harness>(h: &H) {
    let n = node("n1");
    register(h, &n).await;
    let id = enqueue_one(h, job("k")).await;
    claim(h, "default", 1, &n).await;
    let mut rx = subscribe(h).await;
    settle(h, &mut rx).await;
    let out = h
        .store()
        .cancel_job(&CancelJob { id, now: now(h) })
        .await
        .unwrap();
    assert!(matches!(out, CancelOutcome::Requested(_)));
    let got = settle(h, &mut rx).await;
    let cancels: Vec<_> = got
        .iter()
        .filter(|n| n.topic == Topic::CONTROL)
        .filter_map(|n| ControlHint::parse(&n.payload))
        .collect();
    assert_eq!(cancels, vec![ControlHint::Cancel(id)]);
}

/// A new topic needs no backend change: it is carried as is, and only to
/// its own subscribers.
pub async fn a_topic_no_backend_knows_is_carried_to_its_subscribers_only<H: Harness>(h: &H) {
    let mut probe = h.store().subscribe(&[PROBE]).await.unwrap();
    let mut jobs = h.store().subscribe(&[Topic::JOBS]).await.unwrap();
    h.store()
        .notify(Notification::new(PROBE, "{\"hello\":1}"))
        .await
        .unwrap();
    enqueue_one(h, job("k").with_queue("after")).await;
    let got = tokio::time::timeout(Duration::from_secs(10), probe.recv())
        .await
        .expect("the probe arrives");
    assert_eq!(
        got,
        Some(Received::Notification(Notification::new(
            PROBE,
            "{\"hello\":1}"
        )))
    );
    let first = tokio::time::timeout(Duration::from_secs(10), jobs.recv())
        .await
        .expect("the enqueue's hint arrives");
    match first {
        Some(Received::Notification(n)) => {
            assert_eq!(n.topic, Topic::JOBS, "a jobs subscriber gets no probe");
        }
        other => panic!("expected the enqueue's hint, got {other:?}"),
    }
}

/// A payload no backend can carry in full is refused the same way on both,
/// and a transaction that tried to send one goes on as if it had not.
pub async fn a_payload_over_the_limit_is_refused_on_both_backends<H: Harness>(h: &H) {
    let big = Notification::new(PROBE, "x".repeat(capstan_store::MAX_PAYLOAD + 1));
    let e = h.store().notify(big.clone()).await.unwrap_err();
    assert!(
        matches!(e, capstan_store::StoreError::Invalid(_)) && e.to_string().contains("payload"),
        "{e}"
    );
    let mut tx = h.store().begin().await.unwrap();
    assert!(tx.notify(big).await.is_err());
    let id = tx
        .insert_many(&InsertMany {
            jobs: vec![job("k")],
            default_max_attempts: 3,
            now: now(h),
        })
        .await
        .unwrap()[0]
        .id;
    tx.commit().await.unwrap();
    assert!(h.store().get_job(id).await.unwrap().is_some());
    let fits = Notification::new(PROBE, "x".repeat(capstan_store::MAX_PAYLOAD));
    h.store().notify(fits).await.unwrap();
}
