//! The maintenance services built directly, as a node builds them, on both
//! backends (real databases from the conformance harnesses, the harness's
//! pinned clock): what one pass of each does with its config slice.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::{Clock, JobState, NewJob, NodeId};
use capstan_store::jobs::{Claim, Finish, FinishMany, InsertMany, Outcome};
use capstan_store::nodes::{HeartbeatNode, RegisterNode};
use capstan_store::{JobStore, NodeStore};
use capstan_store_conformance::Harness;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    Cleaner, CleanerConfig, Parker, ParkerConfig, Rescuer, RescuerConfig, Scheduler,
    SchedulerConfig,
};
use crate::running::Health;

fn clock<H: Harness>(h: &H) -> Arc<dyn Clock> {
    Arc::new(h.clock().clone())
}

async fn enqueue<H: Harness>(h: &H, jobs: Vec<NewJob>) -> Vec<capstan_core::JobId> {
    h.store()
        .insert_many(&InsertMany {
            jobs,
            default_max_attempts: 3,
            now: h.clock().pinned(),
        })
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

fn noop() -> NewJob {
    NewJob::new("capstan.noop", json!({}))
}

fn beat<H: Harness>(h: &H, node: &str) -> HeartbeatNode {
    HeartbeatNode {
        node: NodeId(node.into()),
        incarnation: "1".into(),
        queues: vec!["default".into()],
        kinds: vec!["capstan.noop".into()],
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
        now: h.clock().pinned(),
    }
}

async fn state<H: Harness>(h: &H, id: capstan_core::JobId) -> Option<JobState> {
    h.store().get_job(id).await.unwrap().map(|j| j.state)
}

pub(crate) async fn the_scheduler_promotes_what_is_due_one_batch_at_a_time<H: Harness>(h: &H) {
    let later = enqueue(
        h,
        vec![
            noop().with_delay(Duration::from_secs(60)),
            noop().with_delay(Duration::from_secs(60)),
            noop().with_delay(Duration::from_secs(60)),
            noop().with_delay(Duration::from_secs(120)),
        ],
    )
    .await;
    let config = SchedulerConfig {
        interval: Duration::from_secs(1),
        batch: 2,
    };
    let s = Scheduler::new(h.store().clone(), clock(h), config, Arc::new(Notify::new()));
    let r = s.run_once().await.unwrap();
    assert_eq!(r.promoted, 0, "nothing is due yet");
    h.clock().advance(Duration::from_secs(61));
    let r = s.run_once().await.unwrap();
    assert_eq!(r.promoted, 2, "one batch");
    assert_eq!(r.queues, vec!["default".to_owned()]);
    assert_eq!(s.run_once().await.unwrap().promoted, 1, "then the rest");
    assert_eq!(state(h, later[3]).await, Some(JobState::Scheduled));
}

pub(crate) async fn the_parker_sets_aside_the_heads_no_live_node_handles<H: Harness>(h: &H) {
    enqueue(h, vec![noop(), noop()]).await;
    enqueue(
        h,
        (0..3)
            .map(|_| NewJob::new("nobody-runs", json!({})))
            .collect(),
    )
    .await;
    enqueue(h, vec![noop().with_queue("unwatched")]).await;
    let config = ParkerConfig {
        interval: Duration::from_secs(1),
        queues: vec!["default".into()],
        batch: 2,
    };
    let p = Parker::new(
        h.store().clone(),
        clock(h),
        config,
        Arc::new(Health::default()),
    );
    let stop = CancellationToken::new();
    // No node at all: nothing in `default` can run; batches of 2 until done.
    let long_ago = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    assert_eq!(p.run_once(long_ago, &stop).await.unwrap(), 5);
    assert_eq!(
        p.run_once(long_ago, &stop).await.unwrap(),
        0,
        "already set aside"
    );
    let filter = capstan_store::jobs::ListJobs {
        queue: Some("unwatched".into()),
        limit: 10,
        ..Default::default()
    };
    let unwatched = h.store().list_jobs(&filter).await.unwrap();
    assert!(!unwatched[0].unhandled, "only the queues of its config");
}

pub(crate) async fn the_cleaner_keeps_each_finished_state_for_its_own_retention<H: Harness>(h: &H) {
    let ids = enqueue(h, vec![noop(), noop(), noop()]).await;
    let node = beat(h, "n");
    h.store()
        .register_node(&RegisterNode {
            beat: node.clone(),
            takeover: None,
        })
        .await
        .unwrap();
    let claimed = h
        .store()
        .claim(&Claim {
            queue: "default".into(),
            kinds: None,
            limit: 3,
            node: node.node.clone(),
            default_timeout: Duration::from_secs(60),
            lease_grace: Duration::from_secs(30),
            now: h.clock().pinned(),
            after: None,
        })
        .await
        .unwrap();
    let finishes = claimed
        .iter()
        .enumerate()
        .map(|(i, j)| Finish {
            lease: j.lease().unwrap(),
            outcome: if i == 0 {
                Outcome::Fail {
                    error: capstan_store::jobs::ErrorRecord {
                        class: capstan_core::ErrorClass::Permanent,
                        message: "no".into(),
                    },
                }
            } else {
                Outcome::Complete {
                    result: json!(null),
                }
            },
        })
        .collect();
    h.store()
        .finish_many(&FinishMany {
            finishes,
            now: h.clock().pinned(),
        })
        .await
        .unwrap();
    let failed = claimed[0].id;
    let config = CleanerConfig {
        interval: Duration::from_secs(60),
        retain_completed: Duration::from_secs(3600),
        retain_failed: Duration::from_secs(7200),
        batch: 1,
    };
    let c = Cleaner::new(h.store().clone(), clock(h), config);
    assert_eq!(c.run_once().await.unwrap(), 0, "nothing is old yet");
    h.clock().advance(Duration::from_secs(3601));
    assert_eq!(c.run_once().await.unwrap(), 1, "one batch of completed");
    assert_eq!(c.run_once().await.unwrap(), 1, "the other");
    assert_eq!(state(h, failed).await, Some(JobState::Failed), "kept 2 h");
    h.clock().advance(Duration::from_secs(3600));
    assert_eq!(c.run_once().await.unwrap(), 1);
    for id in ids {
        assert_eq!(state(h, id).await, None);
    }
}

/// The rescuer beats as its node before it judges, records its health for
/// the parker, and rescues a dead node's job once that node is silent past
/// its timeout while the rescuer stays healthy.
pub(crate) async fn the_rescuer_beats_first_records_its_health_and_rescues_the_dead<H: Harness>(
    h: &H,
) {
    let id = enqueue(h, vec![noop()]).await[0];
    let dead = beat(h, "dead");
    h.store()
        .register_node(&RegisterNode {
            beat: dead.clone(),
            takeover: None,
        })
        .await
        .unwrap();
    h.store()
        .claim(&Claim {
            queue: "default".into(),
            kinds: None,
            limit: 1,
            node: dead.node.clone(),
            default_timeout: Duration::from_secs(3600),
            lease_grace: Duration::from_secs(30),
            now: h.clock().pinned(),
            after: None,
        })
        .await
        .unwrap();
    let health = Arc::new(Health::default());
    let config = RescuerConfig {
        interval: Duration::from_secs(10),
        batch: 10,
    };
    let r = Rescuer::new(
        h.store().clone(),
        clock(h),
        config,
        beat(h, "rescuer"),
        health.clone(),
    );
    let first = r.run_once().await.unwrap();
    assert!(health.get().is_some(), "its beat's health is recorded");
    assert_eq!(health.get(), first.healthy_since);
    let nodes = h.store().list_nodes().await.unwrap();
    assert!(
        nodes.iter().any(|n| n.id.0 == "rescuer"),
        "it beat as its node"
    );
    // Beats 15 s apart: within its own stall threshold (20 s), so healthy.
    for _ in 0..4 {
        h.clock().advance(Duration::from_secs(15));
        let report = r.run_once().await.unwrap();
        if !report.retried.is_empty() {
            assert_eq!(report.retried, vec![id]);
            assert_eq!(state(h, id).await, Some(JobState::Available));
            return;
        }
    }
    panic!("the dead node's job was not rescued 60 s after its last beat");
}

capstan_store_conformance::on_both_backends!(
    maintenance_tests::the_scheduler_promotes_what_is_due_one_batch_at_a_time,
    maintenance_tests::the_parker_sets_aside_the_heads_no_live_node_handles,
    maintenance_tests::the_cleaner_keeps_each_finished_state_for_its_own_retention,
    maintenance_tests::the_rescuer_beats_first_records_its_health_and_rescues_the_dead,
);
