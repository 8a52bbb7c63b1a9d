//! Finishing attempts, and fencing of holders that lost their job.

use std::time::Duration;

use capstan_core::limits::{MAX_ERROR_MESSAGE_BYTES, MAX_RESULT_BYTES};
use capstan_core::{Clock, ErrorClass, JobState, Lease, LeaseToken};
use capstan_store::jobs::{CancelJob, ExtendLeases, Extension, Finish, Outcome, PromoteDue};
use capstan_store::{JobStore, StoreError};
use serde_json::json;

use super::fixture::{
    beat, claim, complete, enqueue, enqueue_one, error, finish, finish_with, get, job, lease, node,
    now, register, rescue,
};
use crate::Harness;

pub async fn complete_records_result_and_finish_time<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let j = claim(h, "default", 1, &n).await.remove(0);
    h.clock().advance(Duration::from_millis(1500));
    let r = finish(h, vec![complete(&j)]).await;
    assert_eq!(r.accepted, vec![lease(&j)]);
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
            vec![finish_with(
                &j,
                Outcome::Retry {
                    error: error(
                        ErrorClass::Retryable,
                        &format!("HTTP 503 on attempt {attempt}"),
                    ),
                    delay: Duration::from_secs(delay),
                },
            )],
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
        vec![finish_with(
            &j,
            Outcome::Retry {
                error: error(ErrorClass::Timeout, "ran past 5m"),
                delay: Duration::ZERO,
            },
        )],
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
        vec![finish_with(
            &j,
            Outcome::Fail {
                error: error(ErrorClass::Permanent, "HTTP 401"),
            },
        )],
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
    let r = finish(h, vec![finish_with(&j, Outcome::Snooze { delay })]).await;
    assert_eq!(r.accepted, vec![lease(&j)]);
    let j = get(h, id).await;
    assert_eq!(j.state, JobState::Scheduled);
    assert_eq!(j.attempt, 0);
    assert_eq!(j.run_at, snoozed_at + chrono::Duration::seconds(30));
    assert!(j.errors.is_empty());
}

pub async fn hand_back_gives_the_attempt_back<H: Harness>(h: &H) {
    let ids: Vec<_> = super::fixture::enqueue(h, vec![job("k"), job("k")])
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let n = node("n1");
    register(h, &n).await;
    let claimed = claim(h, "default", 2, &n).await;
    let r = finish(
        h,
        claimed
            .iter()
            .map(|j| finish_with(j, Outcome::HandBack))
            .collect(),
    )
    .await;
    assert_eq!(r.accepted.len(), 2);
    for id in ids {
        let j = get(h, id).await;
        assert_eq!(j.state, JobState::Available);
        assert_eq!(j.attempt, 0, "shutdown does not burn an attempt");
        assert!(j.node_id.is_none());
    }
    assert_eq!(claim(h, "default", 5, &n).await.len(), 2);
}

pub async fn finish_under_another_lease_is_fenced<H: Harness>(h: &H) {
    let a = enqueue_one(h, job("k")).await;
    let b = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    // Two claims, so two tokens.
    let ja = &claim(h, "default", 1, &n).await[0];
    let jb = &claim(h, "default", 1, &n).await[0];
    assert_eq!((ja.id, jb.id), (a, b));
    assert_ne!(ja.lease_token, jb.lease_token);
    // A token no claim wrote, or another claim's, finishes nothing.
    let forged = Lease {
        job_id: b,
        token: LeaseToken("not-the-claims-token".into()),
    };
    let swapped = Lease {
        job_id: b,
        token: lease(ja).token,
    };
    let outcome = Outcome::Complete { result: json!(1) };
    let r = finish(
        h,
        vec![
            Finish {
                lease: forged.clone(),
                outcome: outcome.clone(),
            },
            Finish {
                lease: swapped.clone(),
                outcome: outcome.clone(),
            },
            complete(ja),
        ],
    )
    .await;
    assert_eq!(r.fenced, vec![forged, swapped]);
    assert_eq!(r.accepted, vec![lease(ja)]);
    assert_eq!(get(h, b).await.state, JobState::Running);
    // A finished job cannot be finished again.
    let r = finish(h, vec![complete(ja)]).await;
    assert_eq!(r.fenced, vec![lease(ja)]);
    assert_eq!(
        finish(h, vec![complete(jb)]).await.accepted,
        vec![lease(jb)]
    );
}

/// A stale and a current finish of one job in one batch (a retry of an
/// ambiguous write, say): only the current lease's is written, and the
/// report says which lease was which.
pub async fn a_stale_and_a_current_finish_of_one_job_are_told_apart<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let old = claim(h, "default", 1, &n).await.remove(0);
    finish(h, vec![finish_with(&old, Outcome::HandBack)]).await;
    let new = claim(h, "default", 1, &n).await.remove(0);
    let r = finish(h, vec![complete(&old), complete(&new)]).await;
    assert_eq!(r.fenced, vec![lease(&old)]);
    assert_eq!(r.accepted, vec![lease(&new)]);
    assert_eq!(get(h, id).await.state, JobState::Completed);
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
    let r = rescue(h).await;
    assert_eq!(r.retried, vec![id]);
    let fresh = claim(h, "default", 1, &fast).await.remove(0);
    assert_eq!(fresh.attempt, 2);
    // The slow worker finally finishes: rejected, and the job is untouched.
    let r = finish(h, vec![complete(&stale)]).await;
    assert_eq!(r.fenced, vec![lease(&stale)]);
    let j = get(h, id).await;
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.node_id.as_ref(), Some(&fast));
    // The new holder's completion counts.
    assert_eq!(
        finish(h, vec![complete(&fresh)]).await.accepted,
        vec![lease(&fresh)]
    );
}

async fn extend<H: Harness>(h: &H, lease: &Lease, progress: serde_json::Value) -> bool {
    let r = h
        .store()
        .extend_leases(&ExtendLeases {
            leases: vec![Extension {
                lease: lease.clone(),
                duration: Duration::from_secs(70),
                progress: Some(progress),
            }],
            now: now(h),
        })
        .await
        .expect("extend_leases");
    assert_eq!(r.accepted.len() + r.fenced.len(), 1);
    r.accepted.contains(lease)
}

pub async fn heartbeat_extends_the_lease_and_records_progress<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let j = claim(h, "default", 1, &n).await.remove(0);
    h.clock().advance(Duration::from_secs(50));
    assert!(extend(h, &lease(&j), json!({"pages": 3})).await);
    let j = get(h, id).await;
    assert_eq!(
        j.lease_expires_at,
        Some(h.clock().now() + chrono::Duration::seconds(70))
    );
    assert_eq!(j.progress, Some(json!({"pages": 3})));
    // Past the original lease (70 s) but within the extended one, a live
    // node keeps its job.
    h.clock().advance(Duration::from_secs(25));
    beat(h, &n).await;
    let r = rescue(h).await;
    assert!(r.retried.is_empty() && r.failed.is_empty());
    assert_eq!(get(h, id).await.state, JobState::Running);
}

/// The heartbeat fence: a lease that is no longer the job's current one
/// extends nothing and records no progress, even while the job runs again
/// on the very same node (same node id, next attempt).
pub async fn heartbeat_under_a_stale_lease_is_fenced<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_timeout(Duration::from_secs(5))).await;
    let n = node("n1");
    register(h, &n).await;
    let first = claim(h, "default", 1, &n).await.remove(0);
    // The node lives, but its lease (5 s + 10 s) ran out a node timeout
    // (30 s) ago: rescued.
    for _ in 0..3 {
        h.clock().advance(Duration::from_secs(16));
        beat(h, &n).await;
    }
    assert_eq!(rescue(h).await.retried, vec![id]);
    let second = claim(h, "default", 1, &n).await.remove(0);
    assert_eq!(second.attempt, 2);
    let before = get(h, id).await;
    assert!(!extend(h, &lease(&first), json!("stale")).await);
    let after = get(h, id).await;
    assert_eq!(after.lease_expires_at, before.lease_expires_at);
    assert_eq!(after.progress, None);
    // Another token, or another job's, is fenced too.
    let other = Lease {
        job_id: id,
        token: LeaseToken("forged".into()),
    };
    assert!(!extend(h, &other, json!("forged")).await);
    h.clock().advance(Duration::from_secs(1));
    assert!(extend(h, &lease(&second), json!("current")).await);
    let j = get(h, id).await;
    assert_eq!(j.progress, Some(json!("current")));
    assert_eq!(
        j.lease_expires_at,
        Some(h.clock().now() + chrono::Duration::seconds(70))
    );
    // A finished job's lease extends nothing either.
    finish(h, vec![complete(&second)]).await;
    assert!(!extend(h, &lease(&second), json!("late")).await);
    let err = StoreError::Fenced {
        lease: lease(&first),
    };
    assert!(err.to_string().contains("no longer held"), "{err}");
}

/// What the database cannot store never takes a batch down: U+0000 (which
/// PostgreSQL's jsonb refuses) becomes U+FFFD, an over-long error message is
/// cut, and a result over the limit fails its own job with a message.
pub async fn a_finish_the_database_cannot_store_does_not_fail_its_batch<H: Harness>(h: &H) {
    let ids: Vec<_> = enqueue(h, (0..4).map(|_| job("k")).collect())
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let n = node("n1");
    register(h, &n).await;
    let c = claim(h, "default", 4, &n).await;
    let by_id = |id| c.iter().find(|j| j.id == id).unwrap();
    let huge = json!("x".repeat(MAX_RESULT_BYTES + 1));
    let long = format!("a\u{0}b{}", "é".repeat(MAX_ERROR_MESSAGE_BYTES));
    let r = finish(
        h,
        vec![
            finish_with(
                by_id(ids[0]),
                Outcome::Complete {
                    result: json!({"text": "pdf\u{0}text", "k\u{0}": 1}),
                },
            ),
            finish_with(by_id(ids[1]), Outcome::Complete { result: huge }),
            finish_with(
                by_id(ids[2]),
                Outcome::Fail {
                    error: error(ErrorClass::Permanent, &long),
                },
            ),
            complete(by_id(ids[3])),
        ],
    )
    .await;
    assert_eq!(r.accepted.len(), 4, "{r:?}");
    let nul = get(h, ids[0]).await;
    assert_eq!(nul.state, JobState::Completed);
    assert_eq!(
        nul.result,
        Some(json!({"text": "pdf\u{FFFD}text", "k\u{FFFD}": 1}))
    );
    let big = get(h, ids[1]).await;
    assert_eq!(big.state, JobState::Failed);
    assert!(big.result.is_none());
    let m = &big.errors[0].message;
    assert!(
        m.contains("result") && m.contains(&MAX_RESULT_BYTES.to_string()),
        "{m}"
    );
    let cut = &get(h, ids[2]).await.errors[0].message;
    assert!(cut.starts_with("a\u{FFFD}b"), "{}", &cut[..10]);
    assert!(cut.len() < MAX_ERROR_MESSAGE_BYTES + 100 && cut.contains("cut"));
    assert_eq!(get(h, ids[3]).await.state, JobState::Completed);
}

/// A cancel request is never lost: a job a user asked to cancel while it ran
/// ends `cancelled` whether its attempt then retried, snoozed or was handed
/// back — and is not claimed again.
pub async fn a_cancel_request_survives_retry_snooze_and_hand_back<H: Harness>(h: &H) {
    let ids: Vec<_> = enqueue(h, (0..3).map(|_| job("k")).collect())
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let n = node("n1");
    register(h, &n).await;
    let c = claim(h, "default", 3, &n).await;
    for id in &ids {
        h.store()
            .cancel_job(&CancelJob {
                id: *id,
                now: now(h),
            })
            .await
            .unwrap();
    }
    let by_id = |id| c.iter().find(|j| j.id == id).unwrap();
    let r = finish(
        h,
        vec![
            finish_with(
                by_id(ids[0]),
                Outcome::Retry {
                    error: error(ErrorClass::Retryable, "HTTP 503"),
                    delay: Duration::from_secs(5),
                },
            ),
            finish_with(
                by_id(ids[1]),
                Outcome::Snooze {
                    delay: Duration::from_secs(5),
                },
            ),
            finish_with(by_id(ids[2]), Outcome::HandBack),
        ],
    )
    .await;
    assert_eq!(r.accepted.len(), 3);
    for id in &ids {
        let j = get(h, *id).await;
        assert_eq!(j.state, JobState::Cancelled, "job {id}");
        assert!(j.finished_at.is_some());
        assert_eq!(j.errors.last().unwrap().class, ErrorClass::Cancelled);
    }
    assert_eq!(
        get(h, ids[0]).await.errors[0].message,
        "HTTP 503",
        "the attempt's own error is kept"
    );
    h.clock().advance(Duration::from_secs(10));
    let promoted = h
        .store()
        .promote_due(&PromoteDue {
            limit: 10,
            now: now(h),
        })
        .await
        .unwrap();
    assert_eq!(promoted.promoted, 0);
    assert!(claim(h, "default", 10, &n).await.is_empty());
}
