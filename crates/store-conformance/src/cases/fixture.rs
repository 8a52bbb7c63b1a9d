//! What the cases share: a job, a node and its beat, and the calls most
//! cases make (enqueue, claim, finish, rescue) with the test clock's time.

use std::time::Duration;

use capstan_core::{Clock, ErrorClass, Job, JobId, Lease, NewJob, NodeId, Timestamp};
use capstan_store::jobs::{
    Claim, ErrorRecord, Finish, FinishMany, InsertMany, Inserted, LeaseReport, Outcome, Rescue,
    RescueReport,
};
use capstan_store::nodes::{HeartbeatNode, NodeBeat, RegisterNode};
use capstan_store::{JobStore, NodeStore};
use serde_json::json;

use crate::Harness;

/// The test clock's time, as handed to the store.
pub(crate) fn now<H: Harness>(h: &H) -> Option<Timestamp> {
    Some(h.clock().now())
}

pub(crate) fn node(name: &str) -> NodeId {
    NodeId(name.to_owned())
}

pub(crate) fn job(kind: &str) -> NewJob {
    NewJob::new(kind, json!({"n": 1}))
}

pub(crate) async fn enqueue<H: Harness>(h: &H, jobs: Vec<NewJob>) -> Vec<Inserted> {
    h.store()
        .insert_many(&InsertMany {
            jobs,
            default_max_attempts: 3,
            now: now(h),
        })
        .await
        .expect("insert_many")
}

pub(crate) async fn enqueue_one<H: Harness>(h: &H, j: NewJob) -> JobId {
    enqueue(h, vec![j]).await[0].id
}

/// The heartbeat of node `n` (incarnation `"1"`, serving `default` with
/// kind `k`, beating every 10 s, dead after 30 s), at the test clock's time.
pub(crate) fn beat_of<H: Harness>(h: &H, n: &NodeId) -> HeartbeatNode {
    HeartbeatNode {
        node: n.clone(),
        incarnation: "1".into(),
        queues: vec!["default".into()],
        kinds: vec!["k".into()],
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
        now: now(h),
    }
}

pub(crate) async fn register<H: Harness>(h: &H, n: &NodeId) {
    h.store()
        .register_node(&RegisterNode {
            beat: beat_of(h, n),
            takeover: None,
        })
        .await
        .expect("register_node");
}

pub(crate) async fn beat<H: Harness>(h: &H, n: &NodeId) -> NodeBeat {
    h.store()
        .heartbeat_node(&beat_of(h, n))
        .await
        .expect("heartbeat_node")
}

/// Rescue without a rescuer node (as a tool would): every node is judged by
/// its own row alone.
pub(crate) async fn rescue<H: Harness>(h: &H) -> RescueReport {
    h.store()
        .rescue(&Rescue {
            rescuer: None,
            limit: 1000,
            now: now(h),
        })
        .await
        .expect("rescue")
}

/// Rescue as node `by` does: it beats first, then judges.
pub(crate) async fn rescue_by<H: Harness>(h: &H, by: &NodeId) -> RescueReport {
    h.store()
        .rescue(&Rescue {
            rescuer: Some(beat_of(h, by)),
            limit: 1000,
            now: now(h),
        })
        .await
        .expect("rescue")
}

pub(crate) fn claim_params<H: Harness>(h: &H, queue: &str, limit: u32, n: &NodeId) -> Claim {
    Claim {
        queue: queue.to_owned(),
        kinds: None,
        limit,
        node: n.clone(),
        default_timeout: Duration::from_secs(60),
        lease_grace: Duration::from_secs(10),
        now: now(h),
        after: None,
    }
}

pub(crate) async fn claim<H: Harness>(h: &H, queue: &str, limit: u32, n: &NodeId) -> Vec<Job> {
    h.store()
        .claim(&claim_params(h, queue, limit, n))
        .await
        .expect("claim")
}

pub(crate) async fn finish<H: Harness>(h: &H, finishes: Vec<Finish>) -> LeaseReport {
    h.store()
        .finish_many(&FinishMany {
            finishes,
            now: now(h),
        })
        .await
        .expect("finish_many")
}

/// The lease a claimed job is held under.
pub(crate) fn lease(j: &Job) -> Lease {
    j.lease().expect("a claimed job has a lease")
}

pub(crate) fn finish_with(j: &Job, outcome: Outcome) -> Finish {
    Finish {
        lease: lease(j),
        outcome,
    }
}

pub(crate) fn complete(j: &Job) -> Finish {
    finish_with(
        j,
        Outcome::Complete {
            result: json!({"ok": j.id.0}),
        },
    )
}

pub(crate) fn error(class: ErrorClass, message: &str) -> ErrorRecord {
    ErrorRecord {
        class,
        message: message.to_owned(),
    }
}

pub(crate) async fn get<H: Harness>(h: &H, id: JobId) -> Job {
    h.store()
        .get_job(id)
        .await
        .expect("get_job")
        .unwrap_or_else(|| panic!("job {id} should exist"))
}
