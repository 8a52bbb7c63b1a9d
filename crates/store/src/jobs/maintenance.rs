//! Maintenance: promote due jobs, set aside jobs no live node can run,
//! delete finished jobs past retention.

use std::time::Duration;

use capstan_core::Timestamp;

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
