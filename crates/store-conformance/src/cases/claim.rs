//! Claim: order, limits, kinds, holder and lease, and no double claims.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use capstan_core::{Clock, JobId, JobState, NewJob};
use capstan_store::jobs::{Claim, ClaimKey, FinishMany, Outcome, PromoteDue};
use capstan_store::{JobStore, QueueStore, Store};
use serde_json::json;

use super::fixture::{
    claim, claim_params, complete, enqueue, enqueue_one, finish, finish_with, get, job, lease,
    node, now, register,
};
use crate::Harness;

pub async fn claim_takes_highest_priority_then_oldest_first<H: Harness>(h: &H) {
    let t0 = h.clock().now();
    let ago = |s: i64| t0 - chrono::Duration::seconds(s);
    let low_old = enqueue_one(h, job("k").with_run_at(ago(30))).await;
    let high_new = enqueue_one(h, job("k").with_priority(5).with_run_at(ago(1))).await;
    let high_old = enqueue_one(h, job("k").with_priority(5).with_run_at(ago(20))).await;
    let low_new = enqueue_one(h, job("k").with_run_at(ago(2))).await;
    let n = node("n1");
    register(h, &n).await;
    let order: Vec<JobId> = claim(h, "default", 10, &n)
        .await
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(order, vec![high_old, high_new, low_old, low_new]);
    // Equal priority and run_at: lowest id first, across claims.
    let same: Vec<JobId> = enqueue(h, (0..5).map(|_| job("k")).collect())
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(claim(h, "default", 1, &n).await.iter().map(|j| j.id));
    }
    assert_eq!(got, same);
}

/// A claim after a key takes only the jobs that follow it in claim order:
/// the rest of the key's priority (later `run_at`, then higher id at the
/// same `run_at`), then the lower priorities; never one before it.
pub async fn a_claim_after_a_key_takes_only_what_follows_it<H: Harness>(h: &H) {
    let t0 = h.clock().now();
    let ago = |s: i64| t0 - chrono::Duration::seconds(s);
    let n = node("n1");
    register(h, &n).await;
    let high_old = enqueue_one(h, job("k").with_priority(5).with_run_at(ago(20))).await;
    let high_same: Vec<JobId> = enqueue(
        h,
        (0..2)
            .map(|_| job("k").with_priority(5).with_run_at(ago(10)))
            .collect(),
    )
    .await
    .iter()
    .map(|i| i.id)
    .collect();
    let low_old = enqueue_one(h, job("k").with_run_at(ago(30))).await;
    let low_new = enqueue_one(h, job("k").with_run_at(ago(1))).await;
    let all = [high_old, high_same[0], high_same[1], low_old, low_new];
    let key = |i: usize, priority: i16, secs: i64| ClaimKey {
        priority,
        run_at: ago(secs),
        id: all[i],
    };
    let after = |k: ClaimKey| {
        let mut p = claim_params(h, "default", 10, &n);
        p.after = Some(k);
        p
    };
    // Each claim's jobs are handed back before the next, so every claim
    // sees all five available.
    let keys = [
        key(0, 5, 20),
        key(1, 5, 10),
        key(2, 5, 10),
        key(3, 0, 30),
        key(4, 0, 1),
    ];
    for (i, k) in keys.into_iter().enumerate() {
        let got = h.store().claim(&after(k)).await.unwrap();
        let ids: Vec<JobId> = got.iter().map(|j| j.id).collect();
        assert_eq!(ids, all[i + 1..].to_vec(), "after job {i}");
        finish(
            h,
            got.iter()
                .map(|j| finish_with(j, Outcome::HandBack))
                .collect(),
        )
        .await;
    }
    let from_start: Vec<JobId> = claim(h, "default", 10, &n)
        .await
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(from_start, all.to_vec(), "without a key, from the start");
}

/// One job per claim, so the order seen is the SQL's own (a claim of many
/// returns them sorted in Rust, which would hide it).
pub async fn a_small_claim_takes_the_highest_priority_and_oldest_first<H: Harness>(h: &H) {
    let t0 = h.clock().now();
    let ago = |s: i64| t0 - chrono::Duration::seconds(s);
    let n = node("n1");
    register(h, &n).await;
    let _old_low = enqueue_one(h, job("k").with_run_at(ago(30))).await;
    let new_high = enqueue_one(h, job("k").with_priority(5).with_run_at(ago(1))).await;
    assert_eq!(
        claim(h, "default", 1, &n).await[0].id,
        new_high,
        "priority beats age"
    );
    // Equal priority: the older run_at first, even with the higher id.
    let mid = enqueue_one(h, job("k").with_priority(2).with_run_at(ago(5))).await;
    let older = enqueue_one(h, job("k").with_priority(2).with_run_at(ago(20))).await;
    assert!(older > mid);
    assert_eq!(
        claim(h, "default", 1, &n).await[0].id,
        older,
        "age beats id"
    );
    assert_eq!(claim(h, "default", 1, &n).await[0].id, mid);
}

/// A claimer never waits on a row another transaction holds: it takes the
/// next job (`FOR UPDATE SKIP LOCKED`). Backends without row locks
/// (SQLite) serialize claims on one writer instead.
pub async fn claim_skips_rows_another_transaction_holds<H: Harness>(h: &H) {
    let first = enqueue_one(h, job("k")).await;
    let second = enqueue_one(h, job("k")).await;
    let Some(lock) = h.lock_job(first).await else {
        assert!(!h.store().capabilities().skip_locked);
        return;
    };
    let n = node("n1");
    register(h, &n).await;
    // A claim that waits on the lock waits until it is dropped, so any
    // bound tells the two apart; a generous one keeps a loaded machine
    // from looking like a wait.
    let got = tokio::time::timeout(Duration::from_secs(30), claim(h, "default", 1, &n))
        .await
        .expect("the claim waited on a locked row instead of skipping it");
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![second]);
    // Awaited: a dropped transaction's rollback runs later, and a claim
    // right after would still find the row locked.
    lock.release().await;
    assert_eq!(claim(h, "default", 1, &n).await[0].id, first);
}

/// A hand-back gives the attempt back, so the same node can claim the same
/// job under the same attempt number again: only the token tells the two
/// executions apart, and the earlier one is fenced.
pub async fn each_claim_writes_a_fresh_lease_token<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let n = node("n1");
    register(h, &n).await;
    let first = claim(h, "default", 1, &n).await.remove(0);
    finish(h, vec![finish_with(&first, Outcome::HandBack)]).await;
    let second = claim(h, "default", 1, &n).await.remove(0);
    assert_eq!((first.attempt, second.attempt), (1, 1));
    assert_ne!(lease(&first), lease(&second));
    assert!(
        lease(&first).token.as_str().len() >= 16,
        "random, not a counter"
    );
    let r = finish(h, vec![complete(&first)]).await;
    assert_eq!(r.fenced, vec![lease(&first)]);
    assert_eq!(get(h, id).await.state, JobState::Running);
    let r = finish(h, vec![complete(&second)]).await;
    assert_eq!(r.accepted, vec![lease(&second)]);
}

/// A row that cannot be read back (written by hand, or by another version)
/// is failed on its own; the rest of its batch is claimed and runs.
pub async fn an_unreadable_row_is_failed_alone_and_its_batch_runs<H: Harness>(h: &H) {
    let good: Vec<JobId> = enqueue(h, (0..10).map(|_| job("k")).collect())
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let bad = good[3];
    // Nested 200 deep: more than the JSON decoder accepts.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    h.execute(&format!(
        "UPDATE {} SET args = '{deep}' WHERE id = {bad}",
        h.table("jobs")
    ))
    .await;
    let n = node("n1");
    register(h, &n).await;
    let claimed = claim(h, "default", 20, &n).await;
    let ids: Vec<JobId> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(ids.len(), 9, "{ids:?}");
    assert!(!ids.contains(&bad));
    let b = h.store().get_job(bad).await;
    // The bad row itself cannot be decoded by get_job either: look at counts.
    assert!(b.is_err(), "{b:?}");
    let counts = h.store().queue_counts().await.unwrap();
    assert_eq!((counts[0].running, counts[0].failed), (9, 1));
    let r = finish(h, claimed.iter().map(complete).collect()).await;
    assert_eq!(r.accepted.len(), 9);
}

/// Rows written without validation (by hand, by an older version) with an
/// absurd timeout still get a bounded lease, and never break the claim.
pub async fn a_huge_stored_timeout_still_gets_a_bounded_lease<H: Harness>(h: &H) {
    let huge = enqueue_one(h, job("k")).await;
    let normal = enqueue_one(h, job("k")).await;
    h.execute(&format!(
        "UPDATE {} SET timeout_ms = 9223372036854775807 WHERE id = {huge}",
        h.table("jobs")
    ))
    .await;
    let n = node("n1");
    register(h, &n).await;
    let claimed = claim(h, "default", 10, &n).await;
    assert_eq!(claimed.len(), 2);
    let t0 = h.clock().now();
    let lease_of = |id| {
        claimed
            .iter()
            .find(|j| j.id == id)
            .unwrap()
            .lease_expires_at
    };
    assert_eq!(lease_of(normal), Some(t0 + chrono::Duration::seconds(70)));
    let year_and_grace = chrono::Duration::days(365) + chrono::Duration::seconds(10);
    assert_eq!(lease_of(huge), Some(t0 + year_and_grace));
    assert!(get(h, huge).await.errors.is_empty());
}

pub async fn claim_respects_limit_and_queue<H: Harness>(h: &H) {
    enqueue(h, (0..7).map(|_| job("k")).collect()).await;
    enqueue(h, (0..3).map(|_| job("k").with_queue("other")).collect()).await;
    let n = node("n1");
    register(h, &n).await;
    assert_eq!(claim(h, "default", 5, &n).await.len(), 5);
    assert_eq!(claim(h, "default", 5, &n).await.len(), 2);
    assert!(claim(h, "default", 5, &n).await.is_empty());
    let other = claim(h, "other", 0, &n).await;
    assert!(other.is_empty(), "limit 0 claims nothing");
    let other = claim(h, "other", 10, &n).await;
    assert_eq!(other.len(), 3);
    assert!(other.iter().all(|j| j.queue == "other"));
}

pub async fn claim_only_takes_requested_kinds<H: Harness>(h: &H) {
    enqueue(h, vec![job("a"), job("b"), job("c"), job("a")]).await;
    let n = node("n1");
    register(h, &n).await;
    let mut p = claim_params(h, "default", 10, &n);
    p.kinds = Some(vec!["a".into(), "c".into()]);
    let got = h.store().claim(&p).await.unwrap();
    let kinds: Vec<&str> = got.iter().map(|j| j.kind.as_str()).collect();
    assert_eq!(kinds, vec!["a", "c", "a"]);
    p.kinds = Some(vec!["zzz".into()]);
    assert!(h.store().claim(&p).await.unwrap().is_empty());
    let left = h.store().queue_counts().await.unwrap();
    assert_eq!(
        left[0].available, 1,
        "the `b` job waits for a worker that handles it"
    );
}

pub async fn claim_sets_holder_attempt_and_lease<H: Harness>(h: &H) {
    let plain = enqueue_one(h, job("k")).await;
    let own = enqueue_one(h, job("k").with_timeout(Duration::from_secs(5))).await;
    let n = node("worker-7");
    register(h, &n).await;
    let claimed = claim(h, "default", 10, &n).await;
    assert_eq!(claimed.len(), 2);
    let t0 = h.clock().now();
    for j in &claimed {
        assert_eq!(j.state, JobState::Running);
        assert_eq!(j.attempt, 1);
        assert_eq!(j.node_id.as_ref(), Some(&n));
        assert_eq!(j.attempted_at, Some(t0));
        assert!(j.lease_token.is_some());
    }
    // Lease = timeout (own or default 60 s) + grace (10 s).
    assert_eq!(
        get(h, plain).await.lease_expires_at,
        Some(t0 + chrono::Duration::seconds(70))
    );
    assert_eq!(
        get(h, own).await.lease_expires_at,
        Some(t0 + chrono::Duration::seconds(15))
    );
}

pub async fn scheduled_jobs_wait_for_promotion<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_delay(Duration::from_secs(10))).await;
    let n = node("n1");
    register(h, &n).await;
    assert!(claim(h, "default", 10, &n).await.is_empty());
    let promote = || PromoteDue {
        limit: 100,
        now: now(h),
    };
    let r = h.store().promote_due(&promote()).await.unwrap();
    assert_eq!(r.promoted, 0);
    h.clock().advance(Duration::from_secs(10));
    let r = h.store().promote_due(&promote()).await.unwrap();
    assert_eq!(r.promoted, 1);
    assert_eq!(r.queues, vec!["default".to_owned()]);
    assert_eq!(claim(h, "default", 10, &n).await[0].id, id);
}

/// 8 workers, each on its own connection, claim small batches and complete
/// them, racing over 5,000 jobs: every job is claimed exactly once.
pub async fn concurrent_claimers_never_share_a_job<H: Harness>(h: &H) {
    const JOBS: usize = 5_000;
    const WORKERS: usize = 8;
    for chunk in 0..(JOBS / 1000) {
        let jobs: Vec<NewJob> = (0..1000)
            .map(|i| NewJob::new("k", json!({ "i": chunk * 1000 + i })))
            .collect();
        enqueue(h, jobs).await;
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::<JobId>::new()));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let store = h.connect_again().await;
        let n = node(&format!("w{w}"));
        register(h, &n).await;
        let p: Claim = claim_params(h, "default", 7, &n);
        let seen = seen.clone();
        let now = now(h);
        tasks.push(tokio::spawn(async move {
            loop {
                let got = store.claim(&p).await.expect("claim");
                if got.is_empty() {
                    break;
                }
                seen.lock().unwrap().extend(got.iter().map(|j| j.id));
                let report = store
                    .finish_many(&FinishMany {
                        finishes: got.iter().map(complete).collect(),
                        now,
                    })
                    .await
                    .expect("finish");
                assert!(report.fenced.is_empty(), "a claimed job was taken away");
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let seen = seen.lock().unwrap().clone();
    let distinct: BTreeSet<JobId> = seen.iter().copied().collect();
    assert_eq!(seen.len(), JOBS, "no job claimed twice");
    assert_eq!(distinct.len(), JOBS, "every job claimed");
    let counts = h.store().queue_counts().await.unwrap();
    assert_eq!(counts[0].completed, JOBS as u64);
}
