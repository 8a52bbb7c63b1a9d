//! The cases, grouped by area. Each is `pub async fn case<H: Harness>(h: &H)`
//! and panics (assert) on a behaviour a user relies on being broken. The
//! case names are sentences and serve as their documentation.
#![allow(missing_docs)]

pub mod admin;
pub mod claim;
pub mod enqueue;
pub mod finish;
pub mod maintenance;
pub mod rescue;

use std::time::Duration;

use capstan_core::{Clock, ErrorClass, Job, JobId, NewJob, NodeId, Timestamp};
use capstan_store::{
    Claim, ErrorRecord, Finish, FinishMany, FinishReport, InsertMany, Inserted, JobStore,
    NodeStore, Outcome, RegisterNode,
};
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

pub(crate) async fn register<H: Harness>(h: &H, n: &NodeId) {
    h.store()
        .register_node(&RegisterNode {
            node: n.clone(),
            queues: vec!["default".into()],
            now: now(h),
        })
        .await
        .expect("register_node");
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
    }
}

pub(crate) async fn claim<H: Harness>(h: &H, queue: &str, limit: u32, n: &NodeId) -> Vec<Job> {
    h.store()
        .claim(&claim_params(h, queue, limit, n))
        .await
        .expect("claim")
}

pub(crate) async fn finish<H: Harness>(h: &H, n: &NodeId, finishes: Vec<Finish>) -> FinishReport {
    h.store()
        .finish_many(&FinishMany {
            node: n.clone(),
            finishes,
            now: now(h),
        })
        .await
        .expect("finish_many")
}

pub(crate) fn complete(j: &Job) -> Finish {
    Finish {
        id: j.id,
        attempt: j.attempt,
        outcome: Outcome::Complete {
            result: json!({"ok": j.id.0}),
        },
    }
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
