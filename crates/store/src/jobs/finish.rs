//! Finishing attempts and extending leases, in batches. Every row names the
//! [`Lease`] it acts under; the database accepts it only while the job is
//! still `running` under that very token, and reports the rest as fenced.

use std::time::Duration;

use capstan_core::{ErrorClass, Lease, Timestamp};
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
///
/// A job a user asked to cancel never goes back to waiting: a `Retry`,
/// `Snooze` or `HandBack` of such a job makes it `cancelled` instead.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
    /// Cancelled while running (or before it started): `cancelled`.
    Cancel {
        /// Why.
        error: ErrorRecord,
    },
    /// Not run (shutdown, or a buffered job that waited too long): back to
    /// `available`, the attempt given back.
    HandBack,
}

/// One finished attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// The execution that ended (the fencing token).
    pub lease: Lease,
    /// What to do.
    pub outcome: Outcome,
}

/// Finish many attempts in one round trip.
#[derive(Debug, Clone)]
pub struct FinishMany {
    /// The attempts.
    pub finishes: Vec<Finish>,
    /// The finish time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// What a batch of fenced writes did ([`FinishMany`], [`ExtendLeases`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseReport {
    /// Rows written: the job was still running under this lease.
    pub accepted: Vec<Lease>,
    /// Rows refused: the job is no longer running under this lease (it was
    /// rescued, finished, or handed to another worker). Nothing was written.
    pub fenced: Vec<Lease>,
}

/// Extend the leases of running jobs (a handler's heartbeat, or the start of
/// a job that waited in a node's buffer) and record progress.
#[derive(Debug, Clone)]
pub struct ExtendLeases {
    /// One row per job.
    pub leases: Vec<Extension>,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// One lease to extend.
#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    /// The execution.
    pub lease: Lease,
    /// The lease now ends this long from `now`.
    pub duration: Duration,
    /// Progress to record (`None` keeps the last).
    pub progress: Option<Value>,
}
