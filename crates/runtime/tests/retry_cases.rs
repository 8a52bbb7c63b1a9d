//! Timeouts, heartbeats, error classes, `retry_after`, backoff on the
//! injected clock, panics.

use std::time::Duration;

use capstan_core::{ErrorClass, JobState, NewJob, RetryPolicy};
use capstan_runtime::{Config, JobContext, JobError, Workers};
use capstan_store_conformance::Harness;
use serde_json::{Value, json};

use crate::support::{client, config, wait_for_job, wait_for_state};

/// Retries without waiting, so tests that are not about backoff need not move the clock.
fn immediate_retries(max_attempts: i32) -> Config {
    let mut c = config();
    c.retry.default = RetryPolicy::exponential(max_attempts, Duration::ZERO, 2.0);
    c
}

pub(crate) async fn timeout_cancels_the_handler_and_retries<H: Harness>(h: &H) {
    let c = client(h, immediate_retries(2));
    let id = c
        .enqueue(
            NewJob::new("capstan.sleep", json!({"ms": 60_000}))
                .with_timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap()
        .id;
    let started = tokio::time::Instant::now();
    let node = c.node(Workers::new()).unwrap().start();
    let j = wait_for_state(&c, id, JobState::Failed).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the 60 s sleeps were cut short"
    );
    assert_eq!(j.attempt, 2);
    let classes: Vec<_> = j.errors.iter().map(|e| e.class).collect();
    assert_eq!(classes, vec![ErrorClass::Timeout, ErrorClass::Timeout]);
    assert!(
        j.errors[0].message.contains("300 ms"),
        "{}",
        j.errors[0].message
    );
    node.shutdown().await.unwrap();
}

pub(crate) async fn heartbeat_keeps_a_long_handler_alive<H: Harness>(h: &H) {
    let c = client(h, immediate_retries(1));
    let mut w = Workers::empty();
    w.register_fn("long", |ctx: JobContext, _args| async move {
        for step in 1..=8 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            ctx.heartbeat(Some(json!({ "step": step }))).await?;
        }
        Ok(json!("done"))
    })
    .unwrap();
    // 800 ms of work under a 300 ms timeout: only the heartbeats keep it alive.
    let id = c
        .enqueue(NewJob::new("long", json!({})).with_timeout(Duration::from_millis(300)))
        .await
        .unwrap()
        .id;
    let node = c.node(w).unwrap().start();
    let j = wait_for_job(&c, id, Duration::from_secs(20), |j| j.state.is_finished()).await;
    assert_eq!(j.state, JobState::Completed, "{:?}", j.errors);
    assert_eq!(j.progress, Some(json!({"step": 8})));
    node.shutdown().await.unwrap();
}

pub(crate) async fn each_error_class_is_recorded_and_acted_on<H: Harness>(h: &H) {
    let c = client(h, immediate_retries(2));
    let retryable = c
        .enqueue(NewJob::new("capstan.fail", json!({"message": "HTTP 503"})))
        .await
        .unwrap()
        .id;
    let permanent = c
        .enqueue(NewJob::new(
            "capstan.fail",
            json!({"message": "HTTP 401", "permanent": true}),
        ))
        .await
        .unwrap()
        .id;
    let bad_args = c
        .enqueue(NewJob::new("capstan.sleep", json!({"ms": "soon"})))
        .await
        .unwrap()
        .id;
    let node = c.node(Workers::new()).unwrap().start();
    let r = wait_for_state(&c, retryable, JobState::Failed).await;
    assert_eq!(
        r.attempt, 2,
        "retryable errors are retried until attempts run out"
    );
    assert!(
        r.errors
            .iter()
            .all(|e| e.class == ErrorClass::Retryable && e.message == "HTTP 503")
    );
    assert_eq!(
        r.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let p = wait_for_state(&c, permanent, JobState::Failed).await;
    assert_eq!(p.attempt, 1, "permanent errors are not retried");
    assert_eq!(p.errors[0].class, ErrorClass::Permanent);
    let b = wait_for_state(&c, bad_args, JobState::Failed).await;
    assert_eq!(b.attempt, 1);
    assert!(
        b.errors[0].message.contains("invalid args"),
        "{}",
        b.errors[0].message
    );
    node.shutdown().await.unwrap();
}

pub(crate) async fn retry_after_is_honoured_exactly<H: Harness>(h: &H) {
    let c = client(h, config());
    let mut w = Workers::empty();
    w.register_fn("rate-limited", |ctx: JobContext, _args| async move {
        if ctx.attempt() == 1 {
            return Err(JobError::retry_after("HTTP 429", Duration::from_secs(17)));
        }
        Ok(Value::Null)
    })
    .unwrap();
    let id = c
        .enqueue(NewJob::new("rate-limited", json!({})))
        .await
        .unwrap()
        .id;
    let node = c.node(w).unwrap().start();
    let j = wait_for_state(&c, id, JobState::Retryable).await;
    let e = &j.errors[0];
    assert_eq!(
        (e.class, e.message.as_str()),
        (ErrorClass::Retryable, "HTTP 429")
    );
    assert_eq!(
        j.run_at - e.at,
        chrono::Duration::seconds(17),
        "not the 1 s default backoff"
    );
    h.clock().advance(Duration::from_secs(16));
    // A promotion at 16 s moves nothing (the node's scheduler cannot either).
    assert_eq!(crate::support::promote(&c).await.promoted, 0);
    assert_eq!(
        c.job(id).await.unwrap().unwrap().state,
        JobState::Retryable,
        "not before 17 s"
    );
    h.clock().advance(Duration::from_secs(1));
    wait_for_state(&c, id, JobState::Completed).await;
    node.shutdown().await.unwrap();
}

pub(crate) async fn backoff_follows_the_policy_on_the_injected_clock<H: Harness>(h: &H) {
    let mut cfg = config();
    cfg.retry.by_kind.insert(
        "flaky".into(),
        RetryPolicy::exponential(4, Duration::from_secs(2), 2.0),
    );
    let c = client(h, cfg);
    let mut w = Workers::empty();
    w.register_fn("flaky", |_ctx, _args| async {
        Err::<Value, _>(JobError::retryable("HTTP 503"))
    })
    .unwrap();
    let id = c.enqueue(NewJob::new("flaky", json!({}))).await.unwrap().id;
    assert_eq!(
        c.job(id).await.unwrap().unwrap().max_attempts,
        4,
        "the kind's policy sets attempts"
    );
    let node = c.node(w).unwrap().start();
    for (attempt, delay) in [(1, 2), (2, 4), (3, 8)] {
        let j = wait_for_job(&c, id, Duration::from_secs(20), |j| {
            j.state == JobState::Retryable && j.attempt == attempt
        })
        .await;
        let e = j.errors.last().unwrap();
        assert_eq!(
            j.run_at - e.at,
            chrono::Duration::seconds(delay),
            "after attempt {attempt}"
        );
        h.clock().advance(Duration::from_secs(delay as u64));
    }
    let j = wait_for_state(&c, id, JobState::Failed).await;
    assert_eq!(j.attempt, 4);
    assert_eq!(j.errors.len(), 4);
    node.shutdown().await.unwrap();
}

pub(crate) async fn panicking_handler_is_retried<H: Harness>(h: &H) {
    let c = client(h, immediate_retries(3));
    let mut w = Workers::empty();
    w.register_fn("fragile", |ctx: JobContext, _args| async move {
        if ctx.attempt() == 1 {
            panic!("index out of bounds");
        }
        Ok(json!("recovered"))
    })
    .unwrap();
    let id = c
        .enqueue(NewJob::new("fragile", json!({})))
        .await
        .unwrap()
        .id;
    let node = c.node(w).unwrap().start();
    let j = wait_for_state(&c, id, JobState::Completed).await;
    assert_eq!(j.errors[0].class, ErrorClass::Panicked);
    assert!(j.errors[0].message.contains("index out of bounds"));
    assert_eq!(j.result, Some(json!("recovered")));
    node.shutdown().await.unwrap();
}

/// A handler sees which job, queue, kind, lease and attempt it runs, and
/// whether this attempt is its last: what it needs to log, to be
/// idempotent, or to give up cleanly on its last try.
pub(crate) async fn a_handler_sees_its_job_and_attempt<H: Harness>(h: &H) {
    let c = client(h, immediate_retries(5));
    let mut w = Workers::empty();
    w.register_fn("introspect", |ctx: JobContext, _args| async move {
        let seen = json!({
            "id": ctx.job_id().0,
            "lease_job": ctx.lease().job_id.0,
            "token": ctx.lease().token.as_str(),
            "kind": ctx.kind(),
            "queue": ctx.queue(),
            "attempt": ctx.attempt(),
            "max": ctx.max_attempts(),
            "last": ctx.is_last_attempt(),
            "cancelled": ctx.is_cancelled(),
        });
        if ctx.is_last_attempt() {
            Ok(seen)
        } else {
            Err(JobError::retryable(seen.to_string()))
        }
    })
    .unwrap();
    let id = c
        .enqueue(
            NewJob::new("introspect", json!({}))
                .with_queue("default")
                .with_max_attempts(2),
        )
        .await
        .unwrap()
        .id;
    let node = c.node(w).unwrap().start();
    let j = wait_for_state(&c, id, JobState::Completed).await;
    let mut first: serde_json::Value = serde_json::from_str(&j.errors[0].message).unwrap();
    let token = first.as_object_mut().unwrap().remove("token").unwrap();
    assert_eq!(token.as_str().unwrap().len(), 16);
    assert_eq!(
        first,
        json!({"id": id.0, "lease_job": id.0, "kind": "introspect", "queue": "default",
               "attempt": 1, "max": 2, "last": false, "cancelled": false})
    );
    let result = j.result.unwrap();
    assert_eq!(result["attempt"], 2);
    assert_eq!(result["last"], true);
    // The lease it saw is the claim's own (the last claim's token stays on
    // the finished row), and not the first attempt's.
    assert_eq!(result["token"], j.lease_token.unwrap().as_str());
    assert_ne!(result["token"], token);
    node.shutdown().await.unwrap();
}
