//! Admin: cancel, retry, read and list jobs.

use std::time::Duration;

use capstan_core::{Clock, ErrorClass, JobId, JobState};
use capstan_store::jobs::{CancelJob, CancelOutcome, ListJobs, Outcome, PromoteDue, RetryJob};
use capstan_store::{JobStore, StoreError};

use super::fixture::{
    beat, claim, enqueue, enqueue_one, error, finish, finish_with, get, job, lease, node, now,
    register,
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

pub async fn list_pages_by_a_cursor_stable_under_inserts_and_filters_by_tag_and_ids<H: Harness>(
    h: &H,
) {
    let ids: Vec<JobId> = enqueue(
        h,
        (0..5)
            .map(|i| {
                job("k").with_tags(if i % 2 == 0 {
                    vec!["even"]
                } else {
                    vec!["odd"]
                })
            })
            .collect(),
    )
    .await
    .iter()
    .map(|i| i.id)
    .collect();
    let page = |before: Option<JobId>, tag: Option<&str>| {
        let p = ListJobs {
            tag: tag.map(str::to_owned),
            before,
            limit: 2,
            ..Default::default()
        };
        async move {
            let jobs = h.store().list_jobs(&p).await.unwrap();
            jobs.iter().map(|j| j.id).collect::<Vec<_>>()
        }
    };
    let first = page(None, None).await;
    assert_eq!(first, vec![ids[4], ids[3]]);
    // A job enqueued between two pages does not shift the next one.
    enqueue_one(h, job("k")).await;
    let second = page(first.last().copied(), None).await;
    assert_eq!(second, vec![ids[2], ids[1]]);
    let third = page(second.last().copied(), None).await;
    assert_eq!(third, vec![ids[0]]);
    assert!(page(Some(ids[0]), None).await.is_empty());
    assert_eq!(page(None, Some("even")).await, vec![ids[4], ids[2]]);
    assert_eq!(page(Some(ids[2]), Some("even")).await, vec![ids[0]]);
    assert!(page(None, Some("none")).await.is_empty());
    // By ids (a live view re-reading what a hint named), newest first.
    let by_ids = h
        .store()
        .list_jobs(&ListJobs {
            ids: Some(vec![ids[1], ids[3], JobId(987_654_321)]),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_ids.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[3], ids[1]]
    );
    let none = ListJobs {
        ids: Some(vec![]),
        limit: 10,
        ..Default::default()
    };
    assert!(h.store().list_jobs(&none).await.unwrap().is_empty());
}
