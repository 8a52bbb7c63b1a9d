//! Maintenance: promote due jobs, rescue jobs whose holder is gone, delete
//! finished jobs past their retention.

use std::time::Duration;

use capstan_core::{JobId, Timestamp};

/// Move `scheduled` and `retryable` jobs whose `run_at` has come to `available`.
#[derive(Debug, Clone)]
pub struct PromoteDue {
    /// At most this many per call.
    pub limit: u32,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// What a [`PromoteDue`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromoteReport {
    /// How many jobs became available.
    pub promoted: u64,
    /// The queues that got jobs (to wake their workers).
    pub queues: Vec<String>,
    /// The earliest `run_at` still in the future, if any.
    pub next_due: Option<Timestamp>,
}

/// Rescue running jobs whose lease expired or whose node stopped heartbeating.
#[derive(Debug, Clone)]
pub struct Rescue {
    /// A node is dead when its last heartbeat is older than this.
    pub node_timeout: Duration,
    /// At most this many jobs per call.
    pub limit: u32,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// What a [`Rescue`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RescueReport {
    /// Jobs made available again (attempts left).
    pub retried: Vec<JobId>,
    /// Jobs failed (no attempts left).
    pub failed: Vec<JobId>,
    /// The queues that got available jobs.
    pub queues: Vec<String>,
    /// Dead nodes removed from the nodes table.
    pub removed_nodes: u64,
}

/// Delete finished jobs past their retention, in a bounded batch.
#[derive(Debug, Clone)]
pub struct DeleteFinished {
    /// Completed jobs finished before this are deleted.
    pub completed_before: Timestamp,
    /// Failed and cancelled jobs finished before this are deleted.
    pub failed_before: Timestamp,
    /// At most this many per call.
    pub limit: u32,
}
