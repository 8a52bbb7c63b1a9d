//! Finishing attempts: complete, retry, fail, snooze, cancel or hand back a
//! job, in batches, each guarded by the holder's node and attempt.

use std::time::Duration;

use capstan_core::{ErrorClass, JobId, NodeId, Timestamp};
use serde_json::Value;

/// An error to append to a job's attempt history; the store adds the time and
/// the attempt number.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRecord {
    /// How it is classified.
    pub class: ErrorClass,
    /// What went wrong.
    pub message: String,
}

/// What to do with a running job whose attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished successfully with `result`.
    Complete {
        /// The handler's result.
        result: Value,
    },
    /// Run again after `delay` (`retryable`; `available` at once when zero).
    Retry {
        /// Why the attempt failed.
        error: ErrorRecord,
        /// How long to wait.
        delay: Duration,
    },
    /// Give up: `failed`.
    Fail {
        /// Why.
        error: ErrorRecord,
    },
    /// Not now: back to `scheduled` after `delay`, the attempt given back.
    Snooze {
        /// How long to wait.
        delay: Duration,
    },
    /// Cancelled while running: `cancelled`.
    Cancel {
        /// Why.
        error: ErrorRecord,
    },
    /// The node is shutting down: back to `available`, the attempt given back.
    HandBack,
}

/// One finished attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// The job.
    pub id: JobId,
    /// The attempt that ran (the fencing token, with the node).
    pub attempt: i32,
    /// What to do.
    pub outcome: Outcome,
}

/// Finish many attempts held by `node` in one round trip.
#[derive(Debug, Clone)]
pub struct FinishMany {
    /// The holder.
    pub node: NodeId,
    /// The attempts.
    pub finishes: Vec<Finish>,
    /// The finish time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// What a [`FinishMany`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishReport {
    /// Jobs whose state was changed.
    pub finished: Vec<JobId>,
    /// Jobs this node no longer held (rescued, cancelled or finished elsewhere):
    /// nothing was written for them.
    pub fenced: Vec<JobId>,
}

/// A running handler's heartbeat: extend its lease and record progress.
#[derive(Debug, Clone)]
pub struct ExtendLease {
    /// The job.
    pub id: JobId,
    /// The attempt that runs.
    pub attempt: i32,
    /// The holder.
    pub node: NodeId,
    /// The lease now ends `lease` from `now`.
    pub lease: Duration,
    /// Progress to record (`None` keeps the last).
    pub progress: Option<Value>,
    /// The heartbeat time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}
