//! Nodes: the processes that hold jobs. A node registers, heartbeats, and
//! deregisters; a node that stops heartbeating is dead and its jobs are rescued.

use capstan_core::{JobId, NodeId, Timestamp};
use serde::Serialize;

/// Register a starting node.
#[derive(Debug, Clone)]
pub struct RegisterNode {
    /// The node.
    pub node: NodeId,
    /// The queues it serves (informational).
    pub queues: Vec<String>,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// What registering did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterReport {
    /// Jobs still held under this node id by a previous process with the same
    /// id, given back to their queues (attempts left) or failed.
    pub reclaimed: u64,
}

/// A node's periodic heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatNode {
    /// The node.
    pub node: NodeId,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// What the database tells a node on heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeBeat {
    /// Running jobs of this node that a user asked to cancel: (job, attempt).
    pub cancel_requested: Vec<(JobId, i32)>,
}

/// A registered node, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeInfo {
    /// Its id.
    pub id: NodeId,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// When it registered.
    pub started_at: Timestamp,
    /// Its last heartbeat.
    pub heartbeat_at: Timestamp,
}
