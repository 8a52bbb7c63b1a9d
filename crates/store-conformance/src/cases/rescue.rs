//! Rescue: jobs of dead nodes and expired leases go back to their queue.

use std::time::Duration;

use capstan_core::{ErrorClass, JobState};
use capstan_store::{HeartbeatNode, JobStore, NodeStore, Rescue, RescueReport};

use super::{claim, enqueue_one, get, job, node, now, register};
use crate::Harness;

async fn rescue<H: Harness>(h: &H) -> RescueReport {
    h.store()
        .rescue(&Rescue {
            node_timeout: Duration::from_secs(30),
            limit: 1000,
            now: now(h),
        })
        .await
        .expect("rescue")
}

async fn beat<H: Harness>(h: &H, n: &capstan_core::NodeId) {
    h.store()
        .heartbeat_node(&HeartbeatNode {
            node: n.clone(),
            now: now(h),
        })
        .await
        .expect("heartbeat");
}

pub async fn jobs_of_a_dead_node_are_rescued<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_timeout(Duration::from_secs(3600))).await;
    let dead = node("dead");
    register(h, &dead).await;
    claim(h, "default", 1, &dead).await;
    h.clock().advance(Duration::from_secs(29));
    assert!(rescue(h).await.retried.is_empty(), "not dead yet at 29 s");
    h.clock().advance(Duration::from_secs(2));
    let r = rescue(h).await;
    assert_eq!(
        r.retried,
        vec![id],
        "rescued within ~30 s whatever its own 1 h timeout"
    );
    assert_eq!(r.queues, vec!["default".to_owned()]);
    assert_eq!(r.removed_nodes, 1);
    let j = get(h, id).await;
    assert_eq!(j.state, JobState::Available);
    assert_eq!(j.attempt, 1, "the lost attempt counts");
    assert!(j.node_id.is_none());
    let e = j.errors.last().unwrap();
    assert_eq!(e.class, ErrorClass::Rescued);
    assert!(e.message.contains("dead"), "{}", e.message);
    assert!(h.store().list_nodes().await.unwrap().is_empty());
}

pub async fn jobs_of_a_live_node_are_kept<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    let live = node("live");
    register(h, &live).await;
    claim(h, "default", 1, &live).await;
    for _ in 0..3 {
        h.clock().advance(Duration::from_secs(20));
        beat(h, &live).await;
        let r = rescue(h).await;
        assert!(r.retried.is_empty() && r.failed.is_empty());
    }
    assert_eq!(get(h, id).await.state, JobState::Running);
}

pub async fn expired_lease_is_rescued_even_if_the_node_lives<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_timeout(Duration::from_secs(5))).await;
    let n = node("n1");
    register(h, &n).await;
    claim(h, "default", 1, &n).await; // lease: 5 s + 10 s grace
    h.clock().advance(Duration::from_secs(14));
    beat(h, &n).await;
    assert!(rescue(h).await.retried.is_empty());
    h.clock().advance(Duration::from_secs(2));
    beat(h, &n).await;
    assert_eq!(rescue(h).await.retried, vec![id]);
    let e = get(h, id).await.errors.pop().unwrap();
    assert!(e.message.contains("lease expired"), "{}", e.message);
}

pub async fn rescue_fails_jobs_without_attempts_left<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_max_attempts(1)).await;
    let n = node("n1");
    register(h, &n).await;
    claim(h, "default", 1, &n).await;
    h.clock().advance(Duration::from_secs(31));
    let r = rescue(h).await;
    assert_eq!(r.failed, vec![id]);
    let j = get(h, id).await;
    assert_eq!(j.state, JobState::Failed);
    assert!(j.finished_at.is_some());
}

pub async fn restarted_node_reclaims_its_previous_jobs<H: Harness>(h: &H) {
    let a = enqueue_one(h, job("k")).await;
    let b = enqueue_one(h, job("k")).await;
    let n = node("web-1");
    register(h, &n).await;
    claim(h, "default", 2, &n).await;
    // The process is killed and started again with the same node id.
    let report = h
        .store()
        .register_node(&capstan_store::RegisterNode {
            node: n.clone(),
            queues: vec![],
            now: now(h),
        })
        .await
        .unwrap();
    assert_eq!(report.reclaimed, 2);
    for id in [a, b] {
        let j = get(h, id).await;
        assert_eq!(j.state, JobState::Available);
        assert_eq!(j.errors.last().unwrap().class, ErrorClass::Rescued);
    }
}
