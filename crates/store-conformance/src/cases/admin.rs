//! Operator actions: cancel, retry, list, counts, queues, nodes.

use std::time::Duration;

use capstan_core::{ErrorClass, JobId, JobState};
use capstan_store::{
    CancelJob, CancelOutcome, Finish, HeartbeatNode, JobStore, ListJobs, NodeStore, Outcome,
    QueueStore, RetryJob, StoreError,
};

use super::{claim, enqueue, enqueue_one, error, finish, get, job, node, now, register};
use crate::Harness;

async fn cancel<H: Harness>(h: &H, id: JobId) -> Result<CancelOutcome, StoreError> {
    h.store().cancel_job(&CancelJob { id, now: now(h) }).await
}

pub async fn cancel_of_a_waiting_job_is_final<H: Harness>(h: &H) {
    let avail = enqueue_one(h, job("k")).await;
    let sched = enqueue_one(h, job("k").with_delay(Duration::from_secs(60))).await;
    for id in [avail, sched] {
        match cancel(h, id).await.unwrap() {
            CancelOutcome::Cancelled(j) => assert_eq!(j.state, JobState::Cancelled),
            other => panic!("expected Cancelled, got {other:?}"),
        }
        let j = get(h, id).await;
        assert_eq!(j.state, JobState::Cancelled);
        assert!(j.finished_at.is_some());
        assert_eq!(j.errors.last().unwrap().class, ErrorClass::Cancelled);
    }
    let n = node("n1");
    register(h, &n).await;
    assert!(claim(h, "default", 10, &n).await.is_empty());
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
    let beat = h
        .store()
        .heartbeat_node(&HeartbeatNode {
            node: n.clone(),
            now: now(h),
        })
        .await
        .unwrap();
    let attempt = claimed.iter().find(|j| j.id == id).unwrap().attempt;
    assert_eq!(beat.cancel_requested, vec![(id, attempt)]);
    let _ = other;
    finish(
        h,
        &n,
        vec![Finish {
            id,
            attempt,
            outcome: Outcome::Cancel {
                error: error(ErrorClass::Cancelled, "cancelled while running"),
            },
        }],
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
        &n,
        vec![Finish {
            id,
            attempt: j.attempt,
            outcome: Outcome::Fail {
                error: error(ErrorClass::Permanent, "no"),
            },
        }],
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
    finish(h, &n, vec![super::complete(&c[0])]).await;
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
            d.retryable
        ),
        (1, 2, 1, 1, 0, 0, 0)
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
    let t0 = capstan_core::Clock::now(h.clock());
    h.clock().advance(Duration::from_secs(5));
    h.store()
        .heartbeat_node(&HeartbeatNode {
            node: n.clone(),
            now: now(h),
        })
        .await
        .unwrap();
    let nodes = h.store().list_nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].id, n);
    assert_eq!(nodes[0].queues, vec!["default".to_owned()]);
    assert_eq!(nodes[0].started_at, t0);
    assert_eq!(nodes[0].heartbeat_at, t0 + chrono::Duration::seconds(5));
    h.store().deregister_node(&n).await.unwrap();
    assert!(h.store().list_nodes().await.unwrap().is_empty());
}
