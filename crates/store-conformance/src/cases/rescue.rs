//! Rescue: jobs of dead nodes and expired leases go back to their queue;
//! an outage is not a death.

use std::time::Duration;

use capstan_core::{ErrorClass, JobState};
use capstan_store::jobs::{CancelJob, Outcome};
use capstan_store::nodes::{HeartbeatNode, RegisterNode};
use capstan_store::{JobStore, NodeStore, Store};

use super::fixture::{
    beat, beat_of, claim, complete, enqueue, enqueue_one, error, finish, finish_with, get, job,
    node, now, register, rescue, rescue_by,
};
use crate::Harness;

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

/// Each node is judged by the node timeout it beats with, not the rescuer's.
pub async fn each_node_is_judged_by_its_own_node_timeout<H: Harness>(h: &H) {
    let slow_beat = |h: &H| HeartbeatNode {
        timeout: Duration::from_secs(90),
        interval: Duration::from_secs(30),
        ..beat_of(h, &node("patient"))
    };
    h.store()
        .register_node(&RegisterNode {
            beat: slow_beat(h),
            takeover: None,
        })
        .await
        .unwrap();
    let id = enqueue_one(h, job("k").with_timeout(Duration::from_secs(3600))).await;
    claim(h, "default", 1, &node("patient")).await;
    let r = node("r");
    register(h, &r).await;
    // The rescuer's own timeout is 30 s; the patient node's is 90 s.
    for _ in 0..8 {
        h.clock().advance(Duration::from_secs(10));
        beat(h, &r).await;
        assert!(
            rescue_by(h, &r).await.retried.is_empty(),
            "alive within its own 90 s"
        );
    }
    h.clock().advance(Duration::from_secs(11));
    assert_eq!(rescue_by(h, &r).await.retried, vec![id]);
}

/// An outage (nobody could write for longer than a node timeout) is not a
/// death: the first rescue after it sees its own beat came late, judges
/// nobody, and every node gets a full node timeout to beat again.
pub async fn after_an_outage_live_nodes_get_a_node_timeout_to_beat_again<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_timeout(Duration::from_secs(3600))).await;
    let (worker, r) = (node("worker"), node("r"));
    register(h, &worker).await;
    register(h, &r).await;
    claim(h, "default", 1, &worker).await;
    // 40 s without a write, for anyone: a failover, a long write lock.
    h.clock().advance(Duration::from_secs(40));
    let report = rescue_by(h, &r).await;
    assert!(report.stalled, "the rescuer's own beat came late");
    assert!(report.retried.is_empty() && report.removed_nodes == 0);
    // 10 s later the worker has not beaten yet (it was stuck too, its beat
    // may come late): 50 s after its last beat, it is not judged dead.
    h.clock().advance(Duration::from_secs(10));
    let report = rescue_by(h, &r).await;
    assert!(!report.stalled);
    assert!(
        report.retried.is_empty(),
        "a live node's job is kept: {report:?}"
    );
    // Both beat again (the worker within its timeout of the outage's end).
    h.clock().advance(Duration::from_secs(10));
    beat(h, &worker).await;
    beat(h, &r).await;
    h.clock().advance(Duration::from_secs(9));
    let report = rescue_by(h, &r).await;
    assert!(report.retried.is_empty(), "{report:?}");
    assert_eq!(get(h, id).await.state, JobState::Running);
    assert!(get(h, id).await.errors.is_empty());
}

/// After an outage, an expired lease waits a node timeout before it is
/// taken: its holder may have kept the finish while the database was away.
pub async fn after_an_outage_an_expired_lease_waits_a_node_timeout<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_timeout(Duration::from_secs(5))).await;
    let (worker, r) = (node("worker"), node("r"));
    register(h, &worker).await;
    register(h, &r).await;
    claim(h, "default", 1, &worker).await; // lease: 5 s + 10 s
    h.clock().advance(Duration::from_secs(40)); // the outage
    assert!(rescue_by(h, &r).await.stalled);
    // The lease expired 25 s ago, the worker beats again: within the grace.
    h.clock().advance(Duration::from_secs(10));
    beat(h, &worker).await;
    let report = rescue_by(h, &r).await;
    assert!(report.retried.is_empty(), "{report:?}");
    h.clock().advance(Duration::from_secs(10));
    beat(h, &worker).await;
    assert!(rescue_by(h, &r).await.retried.is_empty());
    // A node timeout (30 s) after the rescuer came back, the lease is taken.
    h.clock().advance(Duration::from_secs(11));
    beat(h, &worker).await;
    assert_eq!(rescue_by(h, &r).await.retried, vec![id]);
    let e = get(h, id).await.errors.pop().unwrap();
    assert!(e.message.contains("lease expired"), "{}", e.message);
}

/// ...while a node that stays silent a full node timeout after the rescuer
/// recovered is dead, and its jobs are rescued.
pub async fn a_node_silent_past_the_outage_grace_is_dead<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_timeout(Duration::from_secs(3600))).await;
    let (gone, r) = (node("gone"), node("r"));
    register(h, &gone).await;
    register(h, &r).await;
    claim(h, "default", 1, &gone).await;
    h.clock().advance(Duration::from_secs(40));
    assert!(rescue_by(h, &r).await.stalled);
    for _ in 0..2 {
        h.clock().advance(Duration::from_secs(10));
        assert!(
            rescue_by(h, &r).await.retried.is_empty(),
            "within the grace"
        );
    }
    h.clock().advance(Duration::from_secs(11));
    let report = rescue_by(h, &r).await;
    assert_eq!(report.retried, vec![id]);
    assert_eq!(report.removed_nodes, 1);
}

/// A rescuer beats before it judges: its own jobs are never rescued for its
/// own silence, however long it waited to run.
pub async fn a_rescuer_never_takes_its_own_nodes_jobs<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_timeout(Duration::from_secs(3600))).await;
    let r = node("r");
    register(h, &r).await;
    claim(h, "default", 1, &r).await;
    // Nothing but the rescues writes its row: 60 s after its last beat of
    // its own, twice its node timeout, it still holds its job.
    for _ in 0..4 {
        h.clock().advance(Duration::from_secs(15));
        let report = rescue_by(h, &r).await;
        assert!(!report.stalled);
        assert!(report.retried.is_empty(), "{report:?}");
    }
    assert_eq!(get(h, id).await.state, JobState::Running);
}

/// A live node always writes the finishes of its own jobs, but the database
/// may have been away for a stall too short to be seen while it tried: the
/// expired lease of a live holder is taken only once the holder's own node
/// timeout (30 s) has passed since the lease expired.
pub async fn expired_lease_of_a_live_node_is_rescued_a_node_timeout_later<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_timeout(Duration::from_secs(5))).await;
    let (n, rescuer) = (node("n1"), node("r"));
    register(h, &n).await;
    register(h, &rescuer).await;
    claim(h, "default", 1, &n).await; // lease: 5 s + 10 s grace
    let mut at = 0;
    for next in [14, 16, 30, 44] {
        h.clock().advance(Duration::from_secs(next - at));
        at = next;
        beat(h, &n).await;
        let r = rescue(h).await;
        assert!(
            r.retried.is_empty(),
            "{at} s after the claim (lease expired at 15 s): {r:?}"
        );
        assert!(
            rescue_by(h, &rescuer).await.retried.is_empty(),
            "a rescuer node too keeps it at {at} s"
        );
    }
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

/// The process is killed and started again with the same node id (a new
/// incarnation, once the old one's row has expired).
async fn restart<H: Harness>(h: &H, n: &capstan_core::NodeId) -> u64 {
    h.clock().advance(Duration::from_secs(31));
    h.store()
        .register_node(&RegisterNode {
            beat: HeartbeatNode {
                incarnation: "2".into(),
                ..beat_of(h, n)
            },
            takeover: None,
        })
        .await
        .unwrap()
        .reclaimed
}

pub async fn restarted_node_reclaims_its_previous_jobs<H: Harness>(h: &H) {
    let a = enqueue_one(h, job("k")).await;
    let b = enqueue_one(h, job("k")).await;
    let n = node("web-1");
    register(h, &n).await;
    claim(h, "default", 2, &n).await;
    assert_eq!(restart(h, &n).await, 2);
    for id in [a, b] {
        let j = get(h, id).await;
        assert_eq!(j.state, JobState::Available);
        assert_eq!(j.errors.last().unwrap().class, ErrorClass::Rescued);
    }
}

/// A restart never gives a job more attempts than it has: the attempt the
/// crash cut short counts, and a job on its last one fails.
pub async fn restarted_node_fails_jobs_without_attempts_left<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k").with_max_attempts(1)).await;
    let n = node("web-1");
    register(h, &n).await;
    claim(h, "default", 1, &n).await;
    assert_eq!(restart(h, &n).await, 1);
    let j = get(h, id).await;
    assert_eq!(j.state, JobState::Failed);
    assert!(j.finished_at.is_some());
    assert!(claim(h, "default", 1, &n).await.is_empty());
}

/// A cancel request outlives the holder: a job cancelled while its node
/// died ends `cancelled` when rescued or reclaimed, never runs again.
pub async fn a_cancel_request_survives_rescue_and_restart<H: Harness>(h: &H) {
    let rescued = enqueue_one(h, job("k")).await;
    let reclaimed = enqueue_one(h, job("k").with_queue("q2")).await;
    let (dead, restarted) = (node("dead"), node("restarted"));
    register(h, &dead).await;
    register(h, &restarted).await;
    claim(h, "default", 1, &dead).await;
    claim(h, "q2", 1, &restarted).await;
    for id in [rescued, reclaimed] {
        h.store()
            .cancel_job(&CancelJob { id, now: now(h) })
            .await
            .unwrap();
    }
    assert_eq!(restart(h, &restarted).await, 1);
    let r = rescue(h).await;
    assert_eq!(r.cancelled, vec![rescued]);
    assert!(r.retried.is_empty());
    for id in [rescued, reclaimed] {
        let j = get(h, id).await;
        assert_eq!(j.state, JobState::Cancelled, "job {id}");
        assert!(j.finished_at.is_some());
    }
    assert!(claim(h, "default", 5, &restarted).await.is_empty());
    assert!(claim(h, "q2", 5, &restarted).await.is_empty());
}

/// One job whose error history was overwritten by hand (not a JSON array,
/// or not JSON at all on SQLite) never fails a statement for the others:
/// finishes, cancels, rescues and restarts go through, and its history is
/// replaced by a note that says so.
pub async fn an_overwritten_error_history_stops_no_other_job<H: Harness>(h: &H) {
    let ids: Vec<_> = enqueue(h, (0..5).map(|_| job("k")).collect())
        .await
        .iter()
        .map(|i| i.id)
        .collect();
    let waiting = enqueue_one(h, job("k").with_queue("later")).await;
    let (dead, restarted) = (node("dead"), node("restarted"));
    register(h, &dead).await;
    register(h, &restarted).await;
    let c = claim(h, "default", 3, &dead).await;
    let r = claim(h, "default", 2, &restarted).await;
    let overwritten = if h.store().capabilities().backend == "postgres" {
        "'\"not a list\"'"
    } else {
        "'not json'"
    };
    let bad = [ids[0], ids[2], ids[4], waiting];
    h.execute(&format!(
        "UPDATE {} SET errors = {overwritten} WHERE id IN ({})",
        h.table("jobs"),
        bad.map(|id| id.to_string()).join(", ")
    ))
    .await;
    let by_id = |id| c.iter().chain(&r).find(|j| j.id == id).unwrap();
    let written = finish(
        h,
        vec![
            finish_with(
                by_id(ids[0]),
                Outcome::Retry {
                    error: error(ErrorClass::Retryable, "boom"),
                    delay: Duration::ZERO,
                },
            ),
            complete(by_id(ids[1])),
        ],
    )
    .await;
    assert_eq!(written.accepted.len(), 2, "{written:?}");
    h.store()
        .cancel_job(&CancelJob {
            id: waiting,
            now: now(h),
        })
        .await
        .unwrap();
    assert_eq!(restart(h, &restarted).await, 2, "ids 3 and 4 reclaimed");
    let rescued = rescue(h).await;
    assert_eq!(rescued.retried, vec![ids[2]]);
    let state = |j: &capstan_core::Job| {
        (
            j.state,
            j.errors.iter().map(|e| e.class).collect::<Vec<_>>(),
        )
    };
    use ErrorClass::{Cancelled, Rescued, Retryable, Unknown};
    assert_eq!(
        state(&get(h, ids[0]).await),
        (JobState::Available, vec![Unknown, Retryable])
    );
    assert_eq!(state(&get(h, ids[1]).await), (JobState::Completed, vec![]));
    assert_eq!(
        state(&get(h, ids[2]).await),
        (JobState::Available, vec![Unknown, Rescued])
    );
    assert_eq!(
        state(&get(h, ids[3]).await),
        (JobState::Available, vec![Rescued])
    );
    assert_eq!(
        state(&get(h, ids[4]).await),
        (JobState::Available, vec![Unknown, Rescued])
    );
    assert_eq!(
        state(&get(h, waiting).await),
        (JobState::Cancelled, vec![Unknown, Cancelled])
    );
    let note = &get(h, ids[0]).await.errors[0].message;
    assert!(note.contains("error history"), "{note}");
}
