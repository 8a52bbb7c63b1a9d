//! Nodes: register, heartbeat, deregister, and a node id a live process uses.

use std::time::Duration;

use capstan_core::{Clock, JobState};
use capstan_store::nodes::{DeregisterNode, HeartbeatNode, RegisterNode};
use capstan_store::{NodeStore, StoreError};

use super::fixture::{beat, beat_of, claim, enqueue_one, get, job, node, register};
use crate::Harness;

pub async fn nodes_register_heartbeat_and_deregister<H: Harness>(h: &H) {
    let n = node("n1");
    register(h, &n).await;
    let t0 = h.clock().now();
    h.clock().advance(Duration::from_secs(5));
    let b = beat(h, &n).await;
    assert!(!b.revived && !b.replaced);
    assert_eq!(b.healthy_since, Some(t0));
    let nodes = h.store().list_nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    let row = &nodes[0];
    assert_eq!(row.id, n);
    assert_eq!(row.incarnation, "1");
    assert_eq!(row.queues, vec!["default".to_owned()]);
    assert_eq!(row.kinds, vec!["k".to_owned()]);
    assert_eq!(row.interval, Duration::from_secs(10));
    assert_eq!(row.started_at, t0);
    assert_eq!(row.heartbeat_at, t0 + chrono::Duration::seconds(5));
    assert_eq!(
        row.expires_at,
        t0 + chrono::Duration::seconds(35),
        "its own 30 s timeout"
    );
    assert_eq!(row.healthy_since, t0);
    assert!(row.handles("default", "k", h.clock().now()));
    assert!(!row.handles("default", "other", h.clock().now()));
    assert!(!row.handles("q2", "k", h.clock().now()));
    // A beat that comes late (writes were stuck) starts the health over.
    h.clock().advance(Duration::from_secs(25));
    assert_eq!(beat(h, &n).await.healthy_since, Some(h.clock().now()));
    h.store()
        .deregister_node(&DeregisterNode {
            node: n.clone(),
            incarnation: "1".into(),
        })
        .await
        .unwrap();
    assert!(h.store().list_nodes().await.unwrap().is_empty());
    // A node whose row a rescuer removed writes it back whole.
    let b = beat(h, &n).await;
    assert!(b.revived);
    assert_eq!(
        h.store().list_nodes().await.unwrap()[0].kinds,
        vec!["k".to_owned()]
    );
}

/// Two live processes never share a node id: a second one is refused while
/// the first beats; one that waited and saw no beat takes the id over (the
/// first had crashed), and from then on the first can neither beat nor
/// remove the row.
pub async fn a_node_id_in_use_by_a_live_process_is_refused<H: Harness>(h: &H) {
    let n = node("web-1");
    register(h, &n).await;
    let id = enqueue_one(h, job("k")).await;
    claim(h, "default", 1, &n).await;
    let twin = |takeover| RegisterNode {
        beat: HeartbeatNode {
            incarnation: "2".into(),
            ..beat_of(h, &n)
        },
        takeover,
    };
    let err = h.store().register_node(&twin(None)).await.unwrap_err();
    let StoreError::NodeIdInUse {
        beats, interval, ..
    } = err
    else {
        panic!("expected NodeIdInUse, got {err}");
    };
    assert_eq!(interval, Duration::from_secs(10));
    let again = h.store().register_node(&twin(None)).await.unwrap_err();
    assert!(again.to_string().contains("--node-id"), "{again}");
    // The first process beats meanwhile (on a clock that stands still, as a
    // test's may): a takeover named on the old beat fails.
    beat(h, &n).await;
    assert!(matches!(
        h.store().register_node(&twin(Some(beats))).await,
        Err(StoreError::NodeIdInUse { .. })
    ));
    // It does not beat again: the takeover of its last beat succeeds.
    let last = h.store().list_nodes().await.unwrap()[0].beats;
    h.clock().advance(Duration::from_secs(3));
    let r = h.store().register_node(&twin(Some(last))).await.unwrap();
    assert_eq!(r.reclaimed, 1);
    assert_eq!(get(h, id).await.state, JobState::Available);
    // The first process, if it was alive after all, is told it was replaced.
    assert!(beat(h, &n).await.replaced);
    h.store()
        .deregister_node(&DeregisterNode {
            node: n.clone(),
            incarnation: "1".into(),
        })
        .await
        .unwrap();
    let rows = h.store().list_nodes().await.unwrap();
    assert_eq!(
        rows.len(),
        1,
        "the old process cannot remove its successor's row"
    );
    assert_eq!(rows[0].incarnation, "2");
}
