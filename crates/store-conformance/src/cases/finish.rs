//! Finishing attempts, and fencing of holders that lost their job.

use std::time::Duration;

use capstan_core::{Clock, ErrorClass, JobState};
use capstan_store::{
    ExtendLease, Finish, HeartbeatNode, JobStore, NodeStore, Outcome, PromoteDue, Rescue,
    StoreError,
};
use serde_json::json;

use super::{claim, complete, enqueue_one, error, finish, get, job, node, now, register};
use crate::Harness;

pub async fn complete_records_result_and_finish_time<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let j = claim(h, "default", 1, &n).await.remove(0);
    h.clock().advance(Duration::from_millis(1500));
    let r = finish(h, &n, vec![complete(&j)]).await;
    assert_eq!(r.finished, vec![id]);
    assert!(r.fenced.is_empty());
    let j = get(h, id).await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.result, Some(json!({"ok": id.0})));
    assert_eq!(j.finished_at, Some(h.clock().now()));
    assert_eq!(j.attempt, 1);
    assert!(j.node_id.is_none() && j.lease_expires_at.is_none());
}

pub async fn retry_records_the_error_and_waits_for_its_backoff<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let promote = |h: &H| PromoteDue {
        limit: 10,
        now: now(h),
    };
    for (attempt, delay) in [(1, 2), (2, 4)] {
        let j = claim(h, "default", 1, &n).await.remove(0);
        assert_eq!(j.attempt, attempt);
        let failed_at = h.clock().now();
        finish(
            h,
            &n,
            vec![Finish {
                id,
                attempt,
                outcome: Outcome::Retry {
                    error: error(
                        ErrorClass::Retryable,
                        &format!("HTTP 503 on attempt {attempt}"),
                    ),
                    delay: Duration::from_secs(delay),
                },
            }],
        )
        .await;
        let j = get(h, id).await;
        assert_eq!(j.state, JobState::Retryable);
        assert_eq!(
            j.run_at,
            failed_at + chrono::Duration::seconds(delay as i64)
        );
        let last = j.errors.last().unwrap();
        assert_eq!((last.attempt, last.class), (attempt, ErrorClass::Retryable));
        assert_eq!(last.message, format!("HTTP 503 on attempt {attempt}"));
        assert_eq!(last.at, failed_at);
        // Not before its time…
        h.clock()
            .advance(Duration::from_secs(delay) - Duration::from_millis(1));
        assert_eq!(
            h.store().promote_due(&promote(h)).await.unwrap().promoted,
            0
        );
        assert!(claim(h, "default", 1, &n).await.is_empty());
        // …and right on it.
        h.clock().advance(Duration::from_millis(1));
        assert_eq!(
            h.store().promote_due(&promote(h)).await.unwrap().promoted,
            1
        );
    }
    assert_eq!(get(h, id).await.errors.len(), 2);
}

pub async fn fail_is_final_and_keeps_every_error<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let j = claim(h, "default", 1, &n).await.remove(0);
    finish(
        h,
        &n,
        vec![Finish {
            id,
            attempt: j.attempt,
            outcome: Outcome::Retry {
                error: error(ErrorClass::Timeout, "ran past 5m"),
                delay: Duration::ZERO,
            },
        }],
    )
    .await;
    assert_eq!(
        get(h, id).await.state,
        JobState::Available,
        "a zero delay is available at once"
    );
    let j = claim(h, "default", 1, &n).await.remove(0);
    finish(
        h,
        &n,
        vec![Finish {
            id,
            attempt: j.attempt,
            outcome: Outcome::Fail {
                error: error(ErrorClass::Permanent, "HTTP 401"),
            },
        }],
    )
    .await;
    let j = get(h, id).await;
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.finished_at, Some(h.clock().now()));
    let classes: Vec<ErrorClass> = j.errors.iter().map(|e| e.class).collect();
    assert_eq!(classes, vec![ErrorClass::Timeout, ErrorClass::Permanent]);
    assert!(claim(h, "default", 1, &n).await.is_empty());
}

pub async fn snooze_gives_the_attempt_back<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let j = claim(h, "default", 1, &n).await.remove(0);
    let snoozed_at = h.clock().now();
    let delay = Duration::from_secs(30);
    let r = finish(
        h,
        &n,
        vec![Finish {
            id,
            attempt: j.attempt,
            outcome: Outcome::Snooze { delay },
        }],
    )
    .await;
    assert_eq!(r.finished, vec![id]);
    let j = get(h, id).await;
    assert_eq!(j.state, JobState::Scheduled);
    assert_eq!(j.attempt, 0);
    assert_eq!(j.run_at, snoozed_at + chrono::Duration::seconds(30));
    assert!(j.errors.is_empty());
}

pub async fn hand_back_gives_the_attempt_back<H: Harness>(h: &H) {
    let ids: Vec<_> = super::enqueue(h, vec![job("k"), job("k")])
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let n = node("n1");
    register(h, &n).await;
    let claimed = claim(h, "default", 2, &n).await;
    let r = finish(
        h,
        &n,
        claimed
            .iter()
            .map(|j| Finish {
                id: j.id,
                attempt: j.attempt,
                outcome: Outcome::HandBack,
            })
            .collect(),
    )
    .await;
    assert_eq!(r.finished.len(), 2);
    for id in ids {
        let j = get(h, id).await;
        assert_eq!(j.state, JobState::Available);
        assert_eq!(j.attempt, 0, "shutdown does not burn an attempt");
        assert!(j.node_id.is_none());
    }
    assert_eq!(claim(h, "default", 5, &n).await.len(), 2);
}

pub async fn finish_by_a_stale_holder_is_fenced<H: Harness>(h: &H) {
    let a = enqueue_one(h, job("k")).await;
    let b = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let claimed = claim(h, "default", 2, &n).await;
    let stranger = node("n2");
    register(h, &stranger).await;
    // Another node, or a wrong attempt, cannot finish the job.
    let r = finish(h, &stranger, vec![complete(&claimed[0])]).await;
    assert_eq!(r.fenced, vec![a]);
    let mut wrong = complete(&claimed[1]);
    wrong.attempt += 1;
    let r = finish(h, &n, vec![wrong, complete(&claimed[0])]).await;
    assert_eq!(r.fenced, vec![b]);
    assert_eq!(r.finished, vec![a]);
    assert_eq!(get(h, b).await.state, JobState::Running);
    // A finished job cannot be finished again.
    let r = finish(h, &n, vec![complete(&claimed[0])]).await;
    assert_eq!(r.fenced, vec![a]);
}

pub async fn complete_after_rescue_is_fenced<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let slow = node("slow");
    register(h, &slow).await;
    let stale = claim(h, "default", 1, &slow).await.remove(0);
    // `slow` stops heartbeating; the rescuer returns its job; `fast` takes it.
    h.clock().advance(Duration::from_secs(31));
    let fast = node("fast");
    register(h, &fast).await;
    let r = h
        .store()
        .rescue(&Rescue {
            node_timeout: Duration::from_secs(30),
            limit: 100,
            now: now(h),
        })
        .await
        .unwrap();
    assert_eq!(r.retried, vec![id]);
    let fresh = claim(h, "default", 1, &fast).await.remove(0);
    assert_eq!(fresh.attempt, 2);
    // The slow worker finally finishes: rejected, and the job is untouched.
    let r = finish(h, &slow, vec![complete(&stale)]).await;
    assert_eq!(r.fenced, vec![id]);
    let j = get(h, id).await;
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.node_id.as_ref(), Some(&fast));
    // The new holder's completion counts.
    assert_eq!(
        finish(h, &fast, vec![complete(&fresh)]).await.finished,
        vec![id]
    );
}

pub async fn heartbeat_extends_the_lease_and_records_progress<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let j = claim(h, "default", 1, &n).await.remove(0);
    h.clock().advance(Duration::from_secs(50));
    h.store()
        .extend_lease(&ExtendLease {
            id,
            attempt: j.attempt,
            node: n.clone(),
            lease: Duration::from_secs(70),
            progress: Some(json!({"pages": 3})),
            now: now(h),
        })
        .await
        .unwrap();
    let j = get(h, id).await;
    assert_eq!(
        j.lease_expires_at,
        Some(h.clock().now() + chrono::Duration::seconds(70))
    );
    assert_eq!(j.progress, Some(json!({"pages": 3})));
    // Past the original lease (70 s) but within the extended one, a live
    // node keeps its job.
    h.clock().advance(Duration::from_secs(25));
    h.store()
        .heartbeat_node(&HeartbeatNode {
            node: n.clone(),
            now: now(h),
        })
        .await
        .unwrap();
    let r = h
        .store()
        .rescue(&Rescue {
            node_timeout: Duration::from_secs(30),
            limit: 100,
            now: now(h),
        })
        .await
        .unwrap();
    assert!(r.retried.is_empty() && r.failed.is_empty());
    assert_eq!(get(h, id).await.state, JobState::Running);
}

pub async fn heartbeat_after_rescue_is_fenced<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let j = claim(h, "default", 1, &n).await.remove(0);
    h.clock().advance(Duration::from_secs(31));
    h.store()
        .rescue(&Rescue {
            node_timeout: Duration::from_secs(30),
            limit: 100,
            now: now(h),
        })
        .await
        .unwrap();
    let err = h
        .store()
        .extend_lease(&ExtendLease {
            id,
            attempt: j.attempt,
            node: n,
            lease: Duration::from_secs(70),
            progress: None,
            now: now(h),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Fenced { job_id } if job_id == id),
        "{err}"
    );
    assert!(err.to_string().contains("no longer held"), "{err}");
}
