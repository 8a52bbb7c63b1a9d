//! Rescue: give back running jobs whose node is dead or whose lease
//! expired, without ever taking a live node's work after an outage.

use capstan_core::{JobId, Timestamp};

use crate::nodes::HeartbeatNode;

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
