//! Graceful shutdown and retention.

use std::time::Duration;

use capstan_core::{JobState, NewJob};
use capstan_runtime::{Config, Workers};
use capstan_store::NodeStore;
use capstan_store_conformance::{Faults, Harness};
use serde_json::json;

use crate::support::{client, config, enqueue_ids, faulty, noops, until, wait_for_state};

pub(crate) async fn graceful_shutdown_hands_jobs_back_without_burning_attempts<H: Harness>(h: &H) {
    let c = client(
        h,
        Config {
            shutdown_grace: Duration::from_millis(200),
            ..config()
        },
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            c.enqueue(NewJob::new("capstan.sleep", json!({"ms": 60_000})))
                .await
                .unwrap()
                .id,
        );
    }
    let node = c.node(Workers::new()).unwrap().start();
    for id in &ids {
        wait_for_state(&c, *id, JobState::Running).await;
    }
    let started = tokio::time::Instant::now();
    node.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    for id in ids {
        let j = c.job(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Available);
        assert_eq!(j.attempt, 0, "no attempt burned");
        assert!(j.errors.is_empty());
        assert!(j.node_id.is_none());
    }
    assert!(
        h.store().list_nodes().await.unwrap().is_empty(),
        "the node deregistered"
    );
}

pub(crate) async fn jobs_finishing_within_the_grace_period_complete<H: Harness>(h: &H) {
    let c = client(h, config());
    // The shutdown starts once the handler runs: `running` in the database
    // is not enough, a job still in the node's buffer is handed back.
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut w = Workers::empty();
    let signal = started.clone();
    w.register_fn("sleep-300ms", move |_ctx, _args| {
        let signal = signal.clone();
        async move {
            signal.notify_one();
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(json!({"slept_ms": 300}))
        }
    })
    .unwrap();
    let id = c
        .enqueue(NewJob::new("sleep-300ms", json!({})))
        .await
        .unwrap()
        .id;
    let node = c.node(w).unwrap().start();
    started.notified().await;
    node.shutdown().await.unwrap();
    let j = c.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.result, Some(json!({"slept_ms": 300})));
}

pub(crate) async fn cleaner_deletes_finished_jobs_after_retention<H: Harness>(h: &H) {
    let mut cfg = config();
    cfg.retry.default.max_attempts = 1;
    let c = client(h, cfg);
    let done = c
        .enqueue(NewJob::new("capstan.noop", json!({})))
        .await
        .unwrap()
        .id;
    let failed = c
        .enqueue(NewJob::new("capstan.fail", json!({"permanent": true})))
        .await
        .unwrap()
        .id;
    let waiting = c
        .enqueue(
            NewJob::new("capstan.noop", json!({})).with_delay(Duration::from_secs(30 * 24 * 3600)),
        )
        .await
        .unwrap()
        .id;
    let node = c.node(Workers::new()).unwrap().start();
    wait_for_state(&c, done, JobState::Completed).await;
    wait_for_state(&c, failed, JobState::Failed).await;
    node.shutdown().await.unwrap();
    assert_eq!(crate::support::clean(&c).await, 0, "nothing is old yet");
    h.clock().advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(crate::support::clean(&c).await, 1);
    assert!(c.job(done).await.unwrap().is_none(), "completed: kept 24 h");
    assert!(
        c.job(failed).await.unwrap().is_some(),
        "failed: kept 7 days"
    );
    h.clock().advance(Duration::from_secs(6 * 24 * 3600));
    assert_eq!(crate::support::clean(&c).await, 1);
    assert!(c.job(failed).await.unwrap().is_none());
    assert_eq!(
        c.job(waiting).await.unwrap().unwrap().state,
        JobState::Scheduled,
        "waiting jobs are never cleaned"
    );
}

/// A second signal during the shutdown (a second ctrl-c) stops the jobs
/// still running at once and hands them back, instead of waiting out the
/// grace period.
pub(crate) async fn a_second_signal_stops_the_running_jobs_at_once<H: Harness>(h: &H) {
    let c = client(
        h,
        Config {
            shutdown_grace: Duration::from_secs(600),
            ..config()
        },
    );
    let id = c
        .enqueue(NewJob::new("capstan.sleep", json!({"ms": 600_000})))
        .await
        .unwrap()
        .id;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (force_tx, force_rx) = tokio::sync::oneshot::channel::<()>();
    let node = c.node(Workers::new()).unwrap();
    let run = tokio::spawn(node.run_with_force(
        async move {
            let _ = stop_rx.await;
        },
        async move {
            let _ = force_rx.await;
        },
    ));
    wait_for_state(&c, id, JobState::Running).await;
    stop_tx.send(()).unwrap();
    force_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the forced shutdown did not wait for the 10-minute grace")
        .unwrap()
        .unwrap();
    let j = c.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Available, "handed back");
    assert_eq!(j.attempt, 0, "no attempt burned");
}

/// A node's own cleaner works through a backlog batch after batch, at its
/// first tick, and then stops until the next tick.
pub(crate) async fn a_nodes_cleaner_clears_a_backlog_in_batches_then_rests<H: Harness>(h: &H) {
    let c = client(h, config());
    let ids: Vec<_> = enqueue_ids(&c, noops(5)).await;
    let node = c.node(Workers::new()).unwrap().start();
    for id in &ids {
        wait_for_state(&c, *id, JobState::Completed).await;
    }
    node.shutdown().await.unwrap();
    h.clock().advance(Duration::from_secs(24 * 3600 + 1));
    // A node whose next tick is an hour away: only its first one can run.
    let faults = Faults::default();
    let cfg = Config {
        clean_interval: Duration::from_secs(3600),
        clean_batch: 2,
        ..config()
    };
    let cleaning = faulty(h, h.store().clone(), &faults, cfg);
    let node = cleaning.node(Workers::new()).unwrap().start();
    until("the cleaner to delete all five", || {
        faults.answered("delete_finished") >= 3
    })
    .await;
    for id in &ids {
        assert!(c.job(*id).await.unwrap().is_none(), "job {id} kept");
    }
    // Resting: a few beats later it has made no further call.
    let beats = faults.calls("heartbeat_node");
    until("three more beats", || {
        faults.calls("heartbeat_node") >= beats + 3
    })
    .await;
    assert_eq!(faults.calls("delete_finished"), 3, "2 + 2 + 1, then rest");
    node.shutdown().await.unwrap();
}

/// Jobs claimed but still waiting in the node's buffer (concurrency 1: one
/// runs, one waits) go back to their queue at shutdown too, attempt given
/// back, rather than staying held by a node that is gone.
pub(crate) async fn graceful_shutdown_hands_buffered_jobs_back_too<H: Harness>(h: &H) {
    let c = client(
        h,
        Config {
            shutdown_grace: Duration::from_millis(200),
            queues: vec![capstan_runtime::QueueConfig::new("default").with_concurrency(1)],
            prefetch_min: 1, // one held in the buffer behind the running one
            ..config()
        },
    );
    let ids: Vec<_> = enqueue_ids(
        &c,
        (0..3)
            .map(|i| NewJob::new("capstan.sleep", json!({"ms": 60_000, "i": i})))
            .collect(),
    )
    .await;
    let node = c.node(Workers::new()).unwrap().start();
    // One running, one claimed into the buffer behind it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut held = 0;
        for id in &ids {
            held += usize::from(c.job(*id).await.unwrap().unwrap().state == JobState::Running);
        }
        if held == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{held} held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.shutdown().await.unwrap();
    for id in ids {
        let j = c.job(id).await.unwrap().unwrap();
        assert_eq!((j.state, j.attempt), (JobState::Available, 0), "job {id}");
        assert!(j.errors.is_empty(), "{:?}", j.errors);
    }
}
