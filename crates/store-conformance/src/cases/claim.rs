//! Claim: order, limits, kinds, holder and lease, and no double claims.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use capstan_core::{Clock, JobId, JobState, NewJob};
use capstan_store::{Claim, FinishMany, InsertMany, JobStore, PromoteDue, QueueStore};
use serde_json::json;

use super::{claim, claim_params, complete, enqueue, enqueue_one, get, job, node, now, register};
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
        h.store()
            .insert_many(&InsertMany {
                jobs,
                default_max_attempts: 3,
                now: now(h),
            })
            .await
            .unwrap();
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
                        node: p.node.clone(),
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
