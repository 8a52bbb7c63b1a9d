//! Maintenance: migrations, promotion, retention, unhandled kinds.

use std::time::Duration;

use capstan_core::{Clock, ErrorClass, JobState};
use capstan_store::jobs::{DeleteFinished, MarkUnhandled, Outcome, PromoteDue};
use capstan_store::nodes::RegisterNode;
use capstan_store::{JobStore, NodeStore, QueueStore, Store};

use super::fixture::{
    beat_of, claim, complete, enqueue, enqueue_one, error, finish, finish_with, get, job, node,
    now, register,
};
use crate::Harness;

pub async fn migrate_twice_is_a_no_op<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    h.store().migrate().await.expect("second migrate");
    h.connect_again()
        .await
        .migrate()
        .await
        .expect("migrate from another connection");
    assert_eq!(get(h, id).await.state, JobState::Available, "data kept");
}

/// Migrating over nodes of an earlier schema that still beat would break
/// them (their claims and beats no longer fit) and get their live jobs
/// rescued: migrate refuses, and says to stop them first.
pub async fn migrate_refuses_to_upgrade_under_live_older_nodes<H: Harness>(h: &H) {
    let nodes = h.table("nodes");
    let migrations = h.table("migrations");
    register(h, &node("old")).await;
    // As it was before schema version 2, with a node beating a moment ago.
    h.execute(&format!(
        "DELETE FROM {migrations} WHERE version >= {}",
        capstan_store::NODE_PROTOCOL_VERSION
    ))
    .await;
    let beat_now = if h.store().capabilities().backend == "postgres" {
        "now()".to_owned()
    } else {
        chrono::Utc::now().timestamp_micros().to_string()
    };
    h.execute(&format!("UPDATE {nodes} SET heartbeat_at = {beat_now}"))
        .await;
    let err = h.store().migrate().await.unwrap_err();
    assert!(err.to_string().contains("stop every node"), "{err}");
    // Without live older nodes, migrate goes on (and here meets the schema
    // already there: whatever it says, it is not the refusal).
    h.execute(&format!("DELETE FROM {nodes}")).await;
    if let Err(e) = h.store().migrate().await {
        assert!(!e.to_string().contains("stop every node"), "{e}");
    }
}

pub async fn promote_reports_the_next_due_time<H: Harness>(h: &H) {
    let t0 = h.clock().now();
    enqueue(
        h,
        vec![
            job("k").with_delay(Duration::from_secs(5)),
            job("k").with_delay(Duration::from_secs(60)),
            job("k").with_queue("q2").with_delay(Duration::from_secs(5)),
        ],
    )
    .await;
    let p = |h: &H| PromoteDue {
        limit: 100,
        now: now(h),
    };
    let r = h.store().promote_due(&p(h)).await.unwrap();
    assert_eq!(r.promoted, 0);
    assert_eq!(r.next_due, Some(t0 + chrono::Duration::seconds(5)));
    h.clock().advance(Duration::from_secs(5));
    let mut r = h.store().promote_due(&p(h)).await.unwrap();
    r.queues.sort();
    assert_eq!(r.promoted, 2);
    assert_eq!(r.queues, vec!["default".to_owned(), "q2".to_owned()]);
    assert_eq!(r.next_due, Some(t0 + chrono::Duration::seconds(60)));
}

/// Each finished state is kept for its own retention, and a call deletes at
/// most `limit` rows per state.
pub async fn cleaner_deletes_only_jobs_past_retention_in_batches<H: Harness>(h: &H) {
    let n = node("n1");
    register(h, &n).await;
    // Finished two hours ago: 5 completed, 1 failed, 1 cancelled.
    let old: Vec<_> = enqueue(h, (0..7).map(|_| job("k")).collect())
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let c = claim(h, "default", 7, &n).await;
    let by_id = |id| c.iter().find(|j| j.id == id).unwrap();
    let mut finishes: Vec<_> = old[..5].iter().map(|id| complete(by_id(*id))).collect();
    finishes.push(finish_with(
        by_id(old[5]),
        Outcome::Fail {
            error: error(ErrorClass::Permanent, "no"),
        },
    ));
    finishes.push(finish_with(
        by_id(old[6]),
        Outcome::Cancel {
            error: error(ErrorClass::Cancelled, "stop"),
        },
    ));
    finish(h, finishes).await;
    let waiting = enqueue_one(h, job("k").with_delay(Duration::from_secs(30 * 86_400))).await;
    h.clock().advance(Duration::from_secs(2 * 3600));
    let recent = enqueue_one(h, job("k")).await;
    let r = claim(h, "default", 1, &n).await;
    finish(h, r.iter().map(complete).collect()).await;
    // Completed: kept 1 h. Failed and cancelled: kept 3 h.
    let p = |limit| DeleteFinished {
        completed_after: Duration::from_secs(3600),
        failed_after: Duration::from_secs(3 * 3600),
        limit,
        now: now(h),
    };
    assert_eq!(
        h.store().delete_finished(&p(2)).await.unwrap(),
        2,
        "at most 2 per state"
    );
    assert_eq!(h.store().delete_finished(&p(2)).await.unwrap(), 2);
    assert_eq!(h.store().delete_finished(&p(2)).await.unwrap(), 1);
    assert_eq!(h.store().delete_finished(&p(2)).await.unwrap(), 0);
    let counts = h.store().queue_counts().await.unwrap();
    let d = counts.iter().find(|c| c.queue == "default").unwrap();
    assert_eq!(
        (d.completed, d.failed, d.cancelled, d.scheduled),
        (1, 1, 1, 1),
        "failed and cancelled jobs outlive completed ones"
    );
    assert_eq!(get(h, recent).await.state, JobState::Completed);
    assert_eq!(get(h, waiting).await.state, JobState::Scheduled);
    // Past their own retention, failed and cancelled go too (and the recent
    // completed one, now past its hour); waiting jobs never.
    h.clock().advance(Duration::from_secs(3600 + 1));
    assert_eq!(h.store().delete_finished(&p(10)).await.unwrap(), 3);
    assert!(h.store().get_job(old[5]).await.unwrap().is_none());
    assert!(h.store().get_job(recent).await.unwrap().is_none());
    assert_eq!(get(h, waiting).await.state, JobState::Scheduled);
}

/// Jobs no live node can run leave the claim order (so they never make a
/// claim slower), are counted as unhandled, and come back as soon as a node
/// with a handler for their kind registers.
pub async fn unhandled_jobs_wait_outside_the_claim_order_until_a_node_handles_them<H: Harness>(
    h: &H,
) {
    let n = node("n1"); // serves `default` with kind `k`
    register(h, &n).await;
    let t0 = h.clock().now();
    let stray: Vec<_> = enqueue(h, (0..5).map(|_| job("nobody.kind")).collect())
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let handled = enqueue_one(h, job("k")).await;
    let elsewhere = enqueue_one(h, job("nobody.kind").with_queue("q2")).await;
    let mark = |queue: &str, limit| MarkUnhandled {
        queue: queue.to_owned(),
        limit,
        healthy_since: t0,
        now: now(h),
    };
    // The head of the claim order, a few at a time.
    assert_eq!(
        h.store().mark_unhandled(&mark("default", 3)).await.unwrap(),
        3
    );
    assert_eq!(
        h.store().mark_unhandled(&mark("default", 3)).await.unwrap(),
        2
    );
    assert_eq!(
        h.store().mark_unhandled(&mark("default", 3)).await.unwrap(),
        0
    );
    let counts = h.store().queue_counts().await.unwrap();
    let d = counts.iter().find(|c| c.queue == "default").unwrap();
    assert_eq!((d.available, d.unhandled), (6, 5));
    assert!(get(h, stray[0]).await.unhandled);
    assert!(!get(h, handled).await.unhandled);
    assert!(!get(h, elsewhere).await.unhandled, "only the queue asked");
    // Even a claim of every kind passes them by: they are out of the order.
    let mut p = super::fixture::claim_params(h, "default", 10, &n);
    p.kinds = None;
    let got = h.store().claim(&p).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![handled]);
    // A node with a handler for them registers: they are back, and run.
    let other = node("n2");
    h.store()
        .register_node(&RegisterNode {
            beat: capstan_store::nodes::HeartbeatNode {
                kinds: vec!["nobody.kind".into()],
                ..beat_of(h, &other)
            },
            takeover: None,
        })
        .await
        .unwrap();
    let counts = h.store().queue_counts().await.unwrap();
    assert_eq!(
        counts
            .iter()
            .find(|c| c.queue == "default")
            .unwrap()
            .unhandled,
        0
    );
    assert_eq!(claim(h, "default", 10, &other).await.len(), 5);
    // A job of a kind some live node handles is never set aside.
    let k = enqueue_one(h, job("k")).await;
    assert_eq!(
        h.store()
            .mark_unhandled(&mark("default", 10))
            .await
            .unwrap(),
        0
    );
    assert!(!get(h, k).await.unhandled);
    // Its nodes' rows expire. Right after an outage (the caller's own
    // writes working only since now), they still count as live...
    h.clock().advance(Duration::from_secs(31));
    let just_back = MarkUnhandled {
        healthy_since: h.clock().now(),
        ..mark("default", 10)
    };
    assert_eq!(h.store().mark_unhandled(&just_back).await.unwrap(), 0);
    // ...but silent a node timeout past the caller's health, they are dead.
    assert_eq!(
        h.store()
            .mark_unhandled(&mark("default", 10))
            .await
            .unwrap(),
        1
    );
}

/// A node (a pull worker) whose kinds are `*` handles every kind of its
/// queues: nothing of theirs is set aside while it lives, and its beat puts
/// back what was set aside before it came.
pub async fn a_node_of_any_kind_handles_every_kind_of_its_queues<H: Harness>(h: &H) {
    let n = node("n1"); // serves `default` with kind `k`
    register(h, &n).await;
    let t0 = h.clock().now();
    let ids: Vec<_> = enqueue(h, vec![job("x"), job("y"), job("z").with_queue("q2")])
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let mark = |queue: &str| MarkUnhandled {
        queue: queue.to_owned(),
        limit: 10,
        healthy_since: t0,
        now: now(h),
    };
    assert_eq!(h.store().mark_unhandled(&mark("default")).await.unwrap(), 2);
    let any = capstan_store::nodes::HeartbeatNode {
        kinds: vec![capstan_core::ANY_KIND.into()],
        ..beat_of(h, &node("worker"))
    };
    h.store().heartbeat_node(&any).await.unwrap();
    assert!(!get(h, ids[0]).await.unhandled, "its beat put them back");
    assert!(!get(h, ids[1]).await.unhandled);
    assert_eq!(h.store().mark_unhandled(&mark("default")).await.unwrap(), 0);
    // Only the queues it serves.
    assert_eq!(h.store().mark_unhandled(&mark("q2")).await.unwrap(), 1);
    let listed = h.store().list_nodes().await.unwrap();
    let w = listed.iter().find(|r| r.id == any.node).unwrap();
    assert!(w.handles("default", "anything", h.clock().now()));
    assert!(!w.handles("q2", "anything", h.clock().now()));
    // And no job may take the kind that means any.
    let refused = h
        .store()
        .insert_many(&capstan_store::jobs::InsertMany {
            jobs: vec![job(capstan_core::ANY_KIND)],
            default_max_attempts: 3,
            now: now(h),
        })
        .await;
    assert!(matches!(
        refused,
        Err(capstan_store::StoreError::Invalid(_))
    ));
}

/// Read-only tools check the schema without writing: a database migrated to
/// this version passes, one behind (or never migrated) is refused with both
/// versions named.
pub async fn check_schema_refuses_an_older_schema_and_writes_nothing<H: Harness>(h: &H) {
    h.store()
        .check_schema()
        .await
        .expect("a migrated database passes");
    let table = h.table("migrations");
    let needed = h.count(&format!("SELECT max(version) FROM {table}")).await;
    h.execute(&format!("DELETE FROM {table} WHERE version = {needed}"))
        .await;
    match h.store().check_schema().await {
        Err(capstan_store::StoreError::SchemaOutdated {
            applied, needed: n, ..
        }) => {
            assert_eq!((applied, n), (needed - 1, needed));
        }
        other => panic!("an older schema is refused: {other:?}"),
    }
    h.execute(&format!("DELETE FROM {table}")).await;
    let e = h.store().check_schema().await.unwrap_err();
    assert!(e.to_string().contains("no Capstan schema"), "{e}");
    assert_eq!(
        h.count(&format!("SELECT count(*) FROM {table}")).await,
        0,
        "checking wrote nothing"
    );
}
