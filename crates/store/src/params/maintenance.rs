//! Maintenance: promote due jobs, rescue jobs whose holder is gone, set
//! aside jobs no live node can run, delete finished jobs past retention.

use std::time::Duration;

use capstan_core::{JobId, Timestamp};

use crate::HeartbeatNode;

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

/// Rescue running jobs whose lease expired or whose node is dead.
///
/// A node is dead when its row expired (its last heartbeat plus its own
/// node timeout), or is gone. When a `rescuer` node is given, it beats first
/// in the same transaction — so it never judges itself dead — and every
/// judgement waits for the rescuer's own health: a node is dead only once
/// it has been silent a full node timeout *since the rescuer's writes have
/// been working* (`greatest(heartbeat_at, healthy_since) + timeout < now`),
/// and an expired lease is rescued only a node timeout after that. After an
/// outage, every node gets a node timeout to beat again and write its
/// finishes before anything of its is taken.
#[derive(Debug, Clone)]
pub struct Rescue {
    /// The node running the rescue, if any (tests and tools rescue without one).
    pub rescuer: Option<HeartbeatNode>,
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
    /// Jobs cancelled (a user had asked while they ran).
    pub cancelled: Vec<JobId>,
    /// The queues that got available jobs.
    pub queues: Vec<String>,
    /// Dead nodes removed from the nodes table.
    pub removed_nodes: u64,
    /// The rescuer's writes had stalled (its beat came late): it judged
    /// nothing, and gives every node a node timeout from now.
    pub stalled: bool,
    /// Since when the rescuer's writes have been working (its row's
    /// `healthy_since` after its beat), when it beat.
    pub healthy_since: Option<Timestamp>,
}

/// Set aside the available jobs at the head of `queue` whose kind no live
/// node serving the queue has a handler for. They leave the claim order (so
/// they never make a claim slower) and wait, `unhandled`, until a node with
/// their kind registers or beats.
///
/// Liveness is judged as the rescue judges it: a node counts as live until
/// `greatest(heartbeat_at, healthy_since) + its timeout`, so right after an
/// outage (when every row has expired) every node still counts.
#[derive(Debug, Clone)]
pub struct MarkUnhandled {
    /// The queue.
    pub queue: String,
    /// Since when the caller's own writes have been working (see [`Rescue`]).
    pub healthy_since: Timestamp,
    /// Look at most this many jobs, from the head of the claim order.
    pub limit: u32,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// Delete finished jobs past their retention, in a bounded batch.
#[derive(Debug, Clone)]
pub struct DeleteFinished {
    /// Completed jobs finished more than this long ago are deleted.
    pub completed_after: Duration,
    /// Failed and cancelled jobs finished more than this long ago are deleted.
    pub failed_after: Duration,
    /// At most this many per state per call.
    pub limit: u32,
    /// The time; `None` = the database's clock (so nodes with skewed clocks agree).
    pub now: Option<Timestamp>,
}
