//! What an application does with a [`capstan_runtime::Client`] alone, with
//! no node of its own: list and wait. (The maintenance passes are the
//! services' own unit tests, `maintenance::tests`.)

use std::time::Duration;

use capstan_core::{JobId, JobState, NewJob};
use capstan_runtime::{RuntimeError, Workers};
use capstan_store::jobs::ListJobs;
use capstan_store_conformance::{Faults, Harness};
use serde_json::json;

use crate::support::{client, config, enqueue_ids, faulty};

/// `wait` answers with the job once it is finished (by any node), gives up
/// with its current state after the timeout, and polls at a bounded pace.
pub(crate) async fn waiting_on_a_job_answers_once_it_is_finished<H: Harness>(h: &H) {
    let faults = Faults::default();
    let c = faulty(h, h.store().clone(), &faults, config());
    let ids = enqueue_ids(
        &c,
        vec![
            NewJob::new("capstan.sleep", json!({"ms": 300})),
            NewJob::new("capstan.noop", json!({})).with_queue("unserved"),
        ],
    )
    .await;
    let (runs, waits) = (ids[0], ids[1]);
    let node = c.node(Workers::new()).unwrap().start();
    // Asked before the job even started: the answer is the finished job.
    let done = c.wait(runs, Duration::from_secs(20)).await.unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.result, Some(json!({"slept_ms": 300})));

    // No node serves `unserved`: the wait gives up after its timeout, and
    // says how long it waited and what the job still is.
    let before = faults.calls("get_job");
    let started = tokio::time::Instant::now();
    let timeout = Duration::from_millis(800);
    match c.wait(waits, timeout).await {
        Err(RuntimeError::WaitTimeout {
            job_id,
            waited,
            state,
        }) => assert_eq!(
            (job_id, waited, state),
            (waits, timeout, JobState::Available)
        ),
        other => panic!("expected a wait timeout, got {other:?}"),
    }
    assert!(started.elapsed() >= timeout, "gave up early");
    let reads = faults.calls("get_job") - before;
    // Every 20 ms growing by half to 1 s: about 10 reads in 800 ms, never a
    // busy loop on the database.
    assert!((2..=20).contains(&reads), "{reads} reads in 800 ms");

    match c.wait(JobId(i64::MAX), Duration::from_secs(1)).await {
        Err(RuntimeError::Store(capstan_store::StoreError::NotFound { job_id })) => {
            assert_eq!(job_id, JobId(i64::MAX));
        }
        other => panic!("expected not found, got {other:?}"),
    }
    node.shutdown().await.unwrap();
}

/// `list_jobs` filters by queue, state and kind, newest first, up to its
/// limit.
pub(crate) async fn listing_jobs_filters_and_orders_newest_first<H: Harness>(h: &H) {
    let c = client(h, config());
    let ids = enqueue_ids(
        &c,
        vec![
            NewJob::new("a", json!(1)),
            NewJob::new("b", json!(2)),
            NewJob::new("a", json!(3)).with_queue("other"),
            NewJob::new("a", json!(4)),
        ],
    )
    .await;
    let all = |limit| ListJobs {
        limit,
        ..ListJobs::default()
    };
    let listed = |jobs: Vec<capstan_core::Job>| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        listed(c.list_jobs(&all(10)).await.unwrap()),
        vec![ids[3], ids[2], ids[1], ids[0]]
    );
    assert_eq!(
        listed(c.list_jobs(&all(2)).await.unwrap()),
        vec![ids[3], ids[2]]
    );
    let of_a_in_default = ListJobs {
        queue: Some("default".into()),
        kind: Some("a".into()),
        state: Some(JobState::Available),
        ..all(10)
    };
    assert_eq!(
        listed(c.list_jobs(&of_a_in_default).await.unwrap()),
        vec![ids[3], ids[0]]
    );
    let running = ListJobs {
        state: Some(JobState::Running),
        ..all(10)
    };
    assert!(c.list_jobs(&running).await.unwrap().is_empty());
}

/// Concurrent single enqueues share round trips, and each caller still gets
/// its own answer: keys hold across the group, a bad job is refused alone.
pub(crate) async fn concurrent_enqueues_share_round_trips_and_keep_their_own_answers<H: Harness>(
    h: &H,
) {
    let faults = Faults::default();
    let c = faulty(h, h.store().clone(), &faults, config());
    let before = faults.calls("insert_many");
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..60 {
        let c = c.clone();
        calls.spawn(async move {
            let job = match i {
                0 => NewJob::new("", json!({})), // refused: an empty kind
                1..=5 => NewJob::new("capstan.noop", json!({})).with_idempotency_key("shared"),
                _ => NewJob::new("capstan.noop", json!({ "i": i })),
            };
            (i, c.enqueue(job).await)
        });
    }
    let mut keyed = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    while let Some(done) = calls.join_next().await {
        let (i, r) = done.unwrap();
        match i {
            0 => assert!(
                matches!(
                    r,
                    Err(RuntimeError::Store(capstan_store::StoreError::Invalid(_)))
                ),
                "{r:?}"
            ),
            1..=5 => keyed.push(r.unwrap()),
            _ => assert!(ids.insert(r.unwrap().id), "each job its own id"),
        }
    }
    assert_eq!(ids.len(), 54);
    assert_eq!(keyed.iter().filter(|e| !e.existing).count(), 1, "{keyed:?}");
    assert!(keyed.iter().all(|e| e.id == keyed[0].id));
    let trips = faults.calls("insert_many") - before;
    assert!(
        trips < 59,
        "59 jobs in {trips} round trips: none were grouped"
    );
}
