//! Operator actions: cancel, retry, list, counts, queues, nodes.

use std::time::Duration;

use capstan_core::{Clock, ErrorClass, JobId, JobState};
use capstan_store::jobs::{CancelJob, CancelOutcome, ListJobs, Outcome, PromoteDue, RetryJob};
use capstan_store::nodes::{DeregisterNode, HeartbeatNode, RegisterNode};
use capstan_store::{JobStore, NodeStore, QueueStore, StoreError};

use super::{
    beat, beat_of, claim, enqueue, enqueue_one, error, finish, finish_with, get, job, lease, node,
    now, register,
};
use crate::Harness;

async fn cancel<H: Harness>(h: &H, id: JobId) -> Result<CancelOutcome, StoreError> {
    h.store().cancel_job(&CancelJob { id, now: now(h) }).await
}

pub async fn cancel_of_a_waiting_job_is_final<H: Harness>(h: &H) {
    let avail = enqueue_one(h, job("k")).await;
    let sched = enqueue_one(h, job("k").with_delay(Duration::from_secs(60))).await;
    // And one waiting out a retry's backoff.
    let backoff = enqueue_one(h, job("k").with_queue("q2")).await;
    let n = node("n1");
    register(h, &n).await;
    let j = claim(h, "q2", 1, &n).await.remove(0);
    finish(
        h,
        vec![finish_with(
            &j,
            Outcome::Retry {
                error: error(ErrorClass::Retryable, "HTTP 503"),
                delay: Duration::from_secs(30),
            },
        )],
    )
    .await;
    assert_eq!(get(h, backoff).await.state, JobState::Retryable);
    for id in [avail, sched, backoff] {
        match cancel(h, id).await.unwrap() {
            CancelOutcome::Cancelled(j) => assert_eq!(j.state, JobState::Cancelled),
            other => panic!("expected Cancelled, got {other:?}"),
        }
        let j = get(h, id).await;
        assert_eq!(j.state, JobState::Cancelled);
        assert!(j.finished_at.is_some());
        assert_eq!(j.errors.last().unwrap().class, ErrorClass::Cancelled);
    }
    h.clock().advance(Duration::from_secs(60));
    let p = PromoteDue {
        limit: 10,
        now: now(h),
    };
    assert_eq!(h.store().promote_due(&p).await.unwrap().promoted, 0);
    assert!(claim(h, "default", 10, &n).await.is_empty());
    assert!(claim(h, "q2", 10, &n).await.is_empty());
}

pub async fn cancel_of_a_running_job_is_requested_from_its_holder<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let other = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let claimed = claim(h, "default", 2, &n).await;
    match cancel(h, id).await.unwrap() {
        CancelOutcome::Requested(j) => assert!(j.cancel_requested),
        other => panic!("expected Requested, got {other:?}"),
    }
    assert_eq!(
        get(h, id).await.state,
        JobState::Running,
        "the holder decides"
    );
    let b = beat(h, &n).await;
    let cancelled = claimed.iter().find(|j| j.id == id).unwrap();
    let asked: Vec<_> = b
        .held
        .iter()
        .filter(|h| h.cancel_requested)
        .map(|h| h.lease.clone())
        .collect();
    assert_eq!(asked, vec![lease(cancelled)]);
    assert!(
        b.held
            .iter()
            .all(|x| Some(x.claimed_at) == cancelled.attempted_at)
    );
    assert_eq!(b.at, Some(h.clock().now()));
    let mut held: Vec<_> = b.held.iter().map(|h| h.lease.clone()).collect();
    held.sort();
    let mut want: Vec<_> = claimed.iter().map(lease).collect();
    want.sort();
    assert_eq!(held, want, "the heartbeat lists every job the node holds");
    assert!(want.iter().any(|l| l.job_id == other));
    finish(
        h,
        vec![finish_with(
            cancelled,
            Outcome::Cancel {
                error: error(ErrorClass::Cancelled, "cancelled while running"),
            },
        )],
    )
    .await;
    assert_eq!(get(h, id).await.state, JobState::Cancelled);
}

pub async fn cancel_of_a_finished_or_unknown_job_is_refused<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    cancel(h, id).await.unwrap();
    let err = cancel(h, id).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidTransition {
                state: JobState::Cancelled,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cancelled"), "{err}");
    let err = cancel(h, JobId(987_654)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub async fn retry_runs_a_failed_job_again<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_max_attempts(1)).await;
    let n = node("n1");
    register(h, &n).await;
    let j = claim(h, "default", 1, &n).await.remove(0);
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
    let j = h
        .store()
        .retry_job(&RetryJob { id, now: now(h) })
        .await
        .unwrap();
    assert_eq!(j.state, JobState::Available);
    assert!(j.finished_at.is_none());
    assert!(j.max_attempts > j.attempt, "a retried job gets an attempt");
    let again = claim(h, "default", 1, &n).await.remove(0);
    assert_eq!(again.attempt, 2);
    assert_eq!(again.errors.len(), 1, "history is kept");
}

pub async fn retry_of_a_running_job_is_refused<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    claim(h, "default", 1, &n).await;
    let err = h
        .store()
        .retry_job(&RetryJob { id, now: now(h) })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidTransition {
                state: JobState::Running,
                ..
            }
        ),
        "{err}"
    );
    let err = h
        .store()
        .retry_job(&RetryJob {
            id: JobId(424_242),
            now: now(h),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub async fn list_filters_by_queue_state_and_kind<H: Harness>(h: &H) {
    let ids = enqueue(
        h,
        vec![
            job("a"),
            job("b"),
            job("a").with_queue("q2"),
            job("a").with_delay(Duration::from_secs(9)),
        ],
    )
    .await;
    let list = |p: ListJobs| async move { h.store().list_jobs(&p).await.unwrap() };
    let all = list(ListJobs {
        limit: 100,
        ..Default::default()
    })
    .await;
    let got: Vec<JobId> = all.iter().map(|j| j.id).collect();
    let mut want: Vec<JobId> = ids.iter().map(|i| i.id).collect();
    want.reverse();
    assert_eq!(got, want, "newest first");
    let a = list(ListJobs {
        kind: Some("a".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(a.len(), 3);
    let q2 = list(ListJobs {
        queue: Some("q2".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(q2.len(), 1);
    let sched = list(ListJobs {
        state: Some(JobState::Scheduled),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(sched.len(), 1);
    assert_eq!(
        list(ListJobs {
            limit: 2,
            ..Default::default()
        })
        .await
        .len(),
        2
    );
}

pub async fn queue_counts_by_state<H: Harness>(h: &H) {
    enqueue(h, (0..4).map(|_| job("k")).collect()).await;
    enqueue(
        h,
        vec![
            job("k").with_delay(Duration::from_secs(60)),
            job("k").with_queue("b"),
        ],
    )
    .await;
    let n = node("n1");
    register(h, &n).await;
    let c = claim(h, "default", 2, &n).await;
    finish(h, vec![super::complete(&c[0])]).await;
    let counts = h.store().queue_counts().await.unwrap();
    assert_eq!(counts.len(), 2);
    let d = counts.iter().find(|c| c.queue == "default").unwrap();
    assert_eq!(d.queue, "default");
    assert_eq!(
        (
            d.scheduled,
            d.available,
            d.running,
            d.completed,
            d.failed,
            d.cancelled,
            d.retryable,
            d.unhandled
        ),
        (1, 2, 1, 1, 0, 0, 0, 0)
    );
    let b = counts.iter().find(|c| c.queue == "b").unwrap();
    assert_eq!(b.available, 1);
}

pub async fn delete_queue_removes_only_that_queue<H: Harness>(h: &H) {
    enqueue(
        h,
        vec![
            job("k").with_queue("bench"),
            job("k").with_queue("bench"),
            job("k"),
        ],
    )
    .await;
    assert_eq!(h.store().delete_queue("bench").await.unwrap(), 2);
    let counts = h.store().queue_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].queue, "default");
}

pub async fn nodes_register_heartbeat_and_deregister<H: Harness>(h: &H) {
    let n = node("n1");
    register(h, &n).await;
    let t0 = h.clock().now();
    h.clock().advance(Duration::from_secs(5));
    let b = beat(h, &n).await;
    assert!(!b.revived && !b.replaced);
    assert_eq!(b.healthy_since, Some(t0));
    let nodes = h.store().list_nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    let row = &nodes[0];
    assert_eq!(row.id, n);
    assert_eq!(row.incarnation, "1");
    assert_eq!(row.queues, vec!["default".to_owned()]);
    assert_eq!(row.kinds, vec!["k".to_owned()]);
    assert_eq!(row.interval, Duration::from_secs(10));
    assert_eq!(row.started_at, t0);
    assert_eq!(row.heartbeat_at, t0 + chrono::Duration::seconds(5));
    assert_eq!(
        row.expires_at,
        t0 + chrono::Duration::seconds(35),
        "its own 30 s timeout"
    );
    assert_eq!(row.healthy_since, t0);
    assert!(row.handles("default", "k", h.clock().now()));
    assert!(!row.handles("default", "other", h.clock().now()));
    assert!(!row.handles("q2", "k", h.clock().now()));
    // A beat that comes late (writes were stuck) starts the health over.
    h.clock().advance(Duration::from_secs(25));
    assert_eq!(beat(h, &n).await.healthy_since, Some(h.clock().now()));
    h.store()
        .deregister_node(&DeregisterNode {
            node: n.clone(),
            incarnation: "1".into(),
        })
        .await
        .unwrap();
    assert!(h.store().list_nodes().await.unwrap().is_empty());
    // A node whose row a rescuer removed writes it back whole.
    let b = beat(h, &n).await;
    assert!(b.revived);
    assert_eq!(
        h.store().list_nodes().await.unwrap()[0].kinds,
        vec!["k".to_owned()]
    );
}

/// Two live processes never share a node id: a second one is refused while
/// the first beats; one that waited and saw no beat takes the id over (the
/// first had crashed), and from then on the first can neither beat nor
/// remove the row.
pub async fn a_node_id_in_use_by_a_live_process_is_refused<H: Harness>(h: &H) {
    let n = node("web-1");
    register(h, &n).await;
    let id = enqueue_one(h, job("k")).await;
    claim(h, "default", 1, &n).await;
    let twin = |takeover| RegisterNode {
        beat: HeartbeatNode {
            incarnation: "2".into(),
            ..beat_of(h, &n)
        },
        takeover,
    };
    let err = h.store().register_node(&twin(None)).await.unwrap_err();
    let StoreError::NodeIdInUse {
        beats, interval, ..
    } = err
    else {
        panic!("expected NodeIdInUse, got {err}");
    };
    assert_eq!(interval, Duration::from_secs(10));
    let again = h.store().register_node(&twin(None)).await.unwrap_err();
    assert!(again.to_string().contains("--node-id"), "{again}");
    // The first process beats meanwhile (on a clock that stands still, as a
    // test's may): a takeover named on the old beat fails.
    beat(h, &n).await;
    assert!(matches!(
        h.store().register_node(&twin(Some(beats))).await,
        Err(StoreError::NodeIdInUse { .. })
    ));
    // It does not beat again: the takeover of its last beat succeeds.
    let last = h.store().list_nodes().await.unwrap()[0].beats;
    h.clock().advance(Duration::from_secs(3));
    let r = h.store().register_node(&twin(Some(last))).await.unwrap();
    assert_eq!(r.reclaimed, 1);
    assert_eq!(get(h, id).await.state, JobState::Available);
    // The first process, if it was alive after all, is told it was replaced.
    assert!(beat(h, &n).await.replaced);
    h.store()
        .deregister_node(&DeregisterNode {
            node: n.clone(),
            incarnation: "1".into(),
        })
        .await
        .unwrap();
    let rows = h.store().list_nodes().await.unwrap();
    assert_eq!(
        rows.len(),
        1,
        "the old process cannot remove its successor's row"
    );
    assert_eq!(rows[0].incarnation, "2");
}
