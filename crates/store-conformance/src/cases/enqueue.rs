//! Enqueue: batches, options, idempotency and dedupe keys.

use std::collections::BTreeSet;
use std::time::Duration;

use capstan_core::{Clock, JobState, NewJob};
use capstan_store::jobs::{InsertMany, ListJobs};
use capstan_store::{JobStore, QueueStore, StoreError};
use serde_json::json;

use super::fixture::{
    claim, complete, enqueue, enqueue_one, finish, get, job, node, now, register,
};
use crate::Harness;

pub async fn insert_many_returns_one_result_per_job_in_order<H: Harness>(h: &H) {
    let jobs: Vec<NewJob> = (0..50)
        .map(|i| NewJob::new("k", json!({ "i": i })))
        .collect();
    let inserted = enqueue(h, jobs).await;
    assert_eq!(inserted.len(), 50);
    let ids: Vec<i64> = inserted.iter().map(|i| i.id.0).collect();
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 50, "ids are distinct");
    for (i, ins) in inserted.iter().enumerate() {
        assert!(!ins.existing);
        assert_eq!(ins.state, JobState::Available);
        assert_eq!(
            get(h, ins.id).await.args,
            json!({ "i": i }),
            "result {i} is job {i}"
        );
    }
    assert!(enqueue(h, vec![]).await.is_empty());
}

pub async fn enqueued_job_reads_back_with_every_option<H: Harness>(h: &H) {
    let id = enqueue_one(
        h,
        NewJob::new("email.send", json!({"to": "a@example.com", "n": [1, 2]}))
            .with_queue("mail")
            .with_priority(7)
            .with_max_attempts(9)
            .with_timeout(Duration::from_millis(1500))
            .with_tags(["a", "b"])
            .with_idempotency_key("idem-1")
            .with_dedupe_key("dd-1"),
    )
    .await;
    let j = get(h, id).await;
    assert_eq!(j.kind, "email.send");
    assert_eq!(j.queue, "mail");
    assert_eq!(j.args, json!({"to": "a@example.com", "n": [1, 2]}));
    assert_eq!(j.priority, 7);
    assert_eq!(j.max_attempts, 9);
    assert_eq!(j.timeout_ms, Some(1500));
    assert_eq!(j.tags, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(j.idempotency_key.as_deref(), Some("idem-1"));
    assert_eq!(j.dedupe_key.as_deref(), Some("dd-1"));
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.attempt, 0);
    assert_eq!(j.created_at, h.clock().now());
    assert_eq!(j.run_at, h.clock().now());
    assert!(j.errors.is_empty() && j.result.is_none() && j.node_id.is_none());
    // The default applies when the job sets no max_attempts.
    let id = enqueue_one(h, job("plain")).await;
    assert_eq!(get(h, id).await.max_attempts, 3);
}

pub async fn delayed_job_is_scheduled_until_due<H: Harness>(h: &H) {
    let t0 = h.clock().now();
    let delayed = enqueue_one(h, job("k").with_delay(Duration::from_secs(30))).await;
    let at = enqueue_one(h, job("k").with_run_at(t0 + chrono::Duration::seconds(10))).await;
    let past = enqueue_one(h, job("k").with_run_at(t0 - chrono::Duration::seconds(10))).await;
    let d = get(h, delayed).await;
    assert_eq!(d.state, JobState::Scheduled);
    assert_eq!(d.run_at, t0 + chrono::Duration::seconds(30));
    assert_eq!(get(h, at).await.state, JobState::Scheduled);
    assert_eq!(get(h, past).await.state, JobState::Available);
}

pub async fn invalid_job_is_refused_and_nothing_is_written<H: Harness>(h: &H) {
    let err = h
        .store()
        .insert_many(&InsertMany {
            jobs: vec![job("good"), job("bad").with_queue("no spaces allowed")],
            default_max_attempts: 3,
            now: now(h),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("queue"), "{err}");
    assert!(
        h.store().queue_counts().await.unwrap().is_empty(),
        "nothing written"
    );
}

pub async fn idempotency_key_returns_the_existing_job_in_any_state<H: Harness>(h: &H) {
    let first = enqueue(h, vec![job("k").with_idempotency_key("order-42")]).await[0];
    assert!(!first.existing);
    let again = enqueue(h, vec![job("other").with_idempotency_key("order-42")]).await[0];
    assert!(again.existing);
    assert_eq!(again.id, first.id);
    // Still one job per key once it has run and completed.
    let n = node("n1");
    register(h, &n).await;
    let claimed = claim(h, "default", 10, &n).await;
    finish(h, vec![complete(&claimed[0])]).await;
    let after = enqueue(h, vec![job("k").with_idempotency_key("order-42")]).await[0];
    assert!(after.existing);
    assert_eq!(after.id, first.id);
    assert_eq!(after.state, JobState::Completed);
}

pub async fn concurrent_enqueues_with_one_idempotency_key_make_one_job<H: Harness>(h: &H) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = h.connect_again().await;
        let now = now(h);
        tasks.push(tokio::spawn(async move {
            store
                .insert_many(&InsertMany {
                    jobs: vec![NewJob::new("k", json!({ "i": i })).with_idempotency_key("same")],
                    default_max_attempts: 3,
                    now,
                })
                .await
                .expect("insert")[0]
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    let ids: BTreeSet<_> = results.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 1, "one job for 16 concurrent enqueues");
    assert_eq!(
        results.iter().filter(|r| !r.existing).count(),
        1,
        "exactly one created it"
    );
    let all = h
        .store()
        .list_jobs(&ListJobs {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

pub async fn dedupe_key_coalesces_into_the_waiting_job<H: Harness>(h: &H) {
    let first = enqueue(h, vec![job("refresh").with_dedupe_key("ticker:NVDA")]).await[0];
    let second = enqueue(h, vec![job("refresh").with_dedupe_key("ticker:NVDA")]).await[0];
    assert!(second.existing);
    assert_eq!(second.id, first.id);
    let other = enqueue(h, vec![job("refresh").with_dedupe_key("ticker:AAPL")]).await[0];
    assert!(!other.existing);
    // A scheduled job holds its key too.
    let s1 = enqueue(
        h,
        vec![
            job("r")
                .with_dedupe_key("later")
                .with_delay(Duration::from_secs(60)),
        ],
    )
    .await[0];
    let s2 = enqueue(h, vec![job("r").with_dedupe_key("later")]).await[0];
    assert_eq!(s2.id, s1.id);
    assert!(s2.existing);
    // A cancelled job gives its key back.
    h.store()
        .cancel_job(&capstan_store::jobs::CancelJob {
            id: first.id,
            now: now(h),
        })
        .await
        .unwrap();
    let third = enqueue(h, vec![job("refresh").with_dedupe_key("ticker:NVDA")]).await[0];
    assert!(!third.existing);
    assert_ne!(third.id, first.id);
}

pub async fn concurrent_enqueues_with_one_dedupe_key_make_one_job<H: Harness>(h: &H) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = h.connect_again().await;
        let now = now(h);
        tasks.push(tokio::spawn(async move {
            store
                .insert_many(&InsertMany {
                    jobs: vec![NewJob::new("k", json!({})).with_dedupe_key("same")],
                    default_max_attempts: 3,
                    now,
                })
                .await
                .expect("insert")[0]
        }));
    }
    let mut ids = BTreeSet::new();
    let mut created = 0;
    for t in tasks {
        let r = t.await.expect("task");
        ids.insert(r.id);
        created += usize::from(!r.existing);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(created, 1);
}

pub async fn job_enqueued_while_its_dedupe_twin_runs_is_a_new_job<H: Harness>(h: &H) {
    let n = node("n1");
    register(h, &n).await;
    let first = enqueue(h, vec![job("sync").with_dedupe_key("user:7")]).await[0];
    let running = claim(h, "default", 1, &n).await;
    assert_eq!(running[0].id, first.id);
    let second = enqueue(h, vec![job("sync").with_dedupe_key("user:7")]).await[0];
    assert!(!second.existing, "a running job does not absorb new work");
    assert_ne!(second.id, first.id);
    // And the new one coalesces what follows while it waits.
    let third = enqueue(h, vec![job("sync").with_dedupe_key("user:7")]).await[0];
    assert_eq!(third.id, second.id);
    // The first one failing back to waiting does not collide with the second.
    finish(
        h,
        vec![super::fixture::finish_with(
            &running[0],
            capstan_store::jobs::Outcome::Retry {
                error: super::fixture::error(capstan_core::ErrorClass::Retryable, "boom"),
                delay: Duration::from_secs(1),
            },
        )],
    )
    .await;
    assert_eq!(get(h, first.id).await.state, JobState::Retryable);
    assert_eq!(get(h, second.id).await.state, JobState::Available);
}

pub async fn duplicate_keys_within_one_batch_collapse<H: Harness>(h: &H) {
    let r = enqueue(
        h,
        vec![
            job("a").with_idempotency_key("x"),
            job("b"),
            job("c").with_idempotency_key("x"),
            job("d").with_dedupe_key("y"),
            job("e").with_dedupe_key("y"),
        ],
    )
    .await;
    assert_eq!(r[2].id, r[0].id);
    assert!(r[2].existing && !r[0].existing);
    assert_eq!(r[4].id, r[3].id);
    assert!(r[4].existing && !r[3].existing);
    assert!(!r[1].existing);
    assert_eq!(get(h, r[0].id).await.kind, "a");
}

/// A job whose idempotency key is held by one job and whose dedupe key by
/// another answers with the job of its idempotency key: that is the one the
/// caller's key names.
pub async fn an_idempotency_key_answers_with_its_own_job_before_a_dedupe_twin<H: Harness>(h: &H) {
    let by_dedupe = enqueue_one(h, job("k").with_idempotency_key("x").with_dedupe_key("d")).await;
    let by_key = enqueue_one(h, job("k").with_idempotency_key("y")).await;
    assert!(by_dedupe < by_key, "the dedupe holder has the lower id");
    let r = enqueue(
        h,
        vec![job("k").with_idempotency_key("y").with_dedupe_key("d")],
    )
    .await[0];
    assert!(r.existing);
    assert_eq!(r.id, by_key);
}

/// Two batches that share keys, inserted concurrently in opposite orders,
/// both go through (no deadlock between their inserts) and make one job
/// per key.
pub async fn concurrent_batches_sharing_keys_in_any_order_both_succeed<H: Harness>(h: &H) {
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let store = h.connect_again().await;
        let mut order = keys.clone();
        if t % 2 == 1 {
            order.reverse();
        }
        let now = now(h);
        tasks.push(tokio::spawn(async move {
            for round in 0..5 {
                let jobs = order
                    .iter()
                    .map(|k| {
                        NewJob::new("k", json!({ "round": round }))
                            .with_idempotency_key(format!("{k}-{round}"))
                    })
                    .collect();
                store
                    .insert_many(&InsertMany {
                        jobs,
                        default_max_attempts: 3,
                        now,
                    })
                    .await
                    .expect("a batch sharing keys with another failed");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let counts = h.store().queue_counts().await.unwrap();
    assert_eq!(counts[0].available, 100, "one job per key and round");
}

/// Durations past their bounds are refused before anything is written:
/// `Duration::MAX` is a common "no timeout", and would overflow the lease.
pub async fn unbounded_durations_are_refused_and_nothing_is_written<H: Harness>(h: &H) {
    for bad in [
        job("k").with_timeout(Duration::MAX),
        job("k").with_timeout(Duration::ZERO),
        job("k").with_delay(Duration::MAX),
        job("k").with_run_at(h.clock().now() + chrono::Duration::days(200 * 365)),
    ] {
        let err = h
            .store()
            .insert_many(&InsertMany {
                jobs: vec![job("fine"), bad],
                default_max_attempts: 3,
                now: now(h),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    }
    assert!(h.store().queue_counts().await.unwrap().is_empty());
}
