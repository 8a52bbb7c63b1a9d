//! Nodes: the processes that hold jobs. A node registers, heartbeats, and
//! deregisters; a node whose row expires is dead and its jobs are rescued.
//!
//! Each row carries the node's own expiry (`heartbeat_at + its node_timeout`)
//! and `healthy_since`: the time since which its beats have come without a
//! stall. A beat that follows the previous one by more than [`HeartbeatNode::stall`]
//! (halfway between the heartbeat interval and the node timeout) means
//! writes were stuck (an outage, a failover,
//! a long SQLite write lock), for this node and very likely for every other:
//! `healthy_since` starts over, and its rescuer gives every other node a
//! full node timeout to beat again, and every holder of an expired lease a
//! node timeout to write the finish it kept, before taking anything.
//!
//! Two bounds make that sound (the runtime's configuration checks them): a
//! node timeout of at least three intervals, so that a stall short enough to
//! go unseen cannot outlast a live node's timeout (`(T + i) / 2 <= T - i`);
//! and a lease grace at least as long as that stall, so that it cannot
//! outlast the grace of a lease whose finish it held back either.

use std::future::Future;
use std::time::Duration;

use capstan_core::{Lease, NodeId, Timestamp};
use serde::Serialize;

use crate::{StoreError, StoreResult};

/// A live node's heartbeat: everything its row holds, so that a row deleted
/// by a rescuer (the node was thought dead) is written back whole.
#[derive(Debug, Clone)]
pub struct HeartbeatNode {
    /// The node.
    pub node: NodeId,
    /// This process, among processes that may use the same node id: random
    /// per start. A beat never overwrites a row of another incarnation.
    pub incarnation: String,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// The job kinds it has handlers for ([`capstan_core::ANY_KIND`]: any).
    pub kinds: Vec<String>,
    /// How often it beats.
    pub interval: Duration,
    /// It is dead when silent this long (its `node_timeout`).
    pub timeout: Duration,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

impl HeartbeatNode {
    /// A gap between two beats longer than this means writes were stuck:
    /// halfway between the interval and the timeout (see the module docs for
    /// why that is enough, and what it asks of the configuration).
    pub fn stall(&self) -> Duration {
        self.interval + self.timeout.saturating_sub(self.interval) / 2
    }

    /// The health of this node after a beat at `now`, given its row before.
    pub fn healthy_since(&self, before: Option<&NodeInfo>, now: Timestamp) -> Timestamp {
        match before {
            Some(row) if row.incarnation == self.incarnation => {
                let gap = (now - row.heartbeat_at).to_std().unwrap_or_default();
                if gap > self.stall() {
                    now
                } else {
                    row.healthy_since
                }
            }
            _ => now,
        }
    }
}

/// Register a starting node.
#[derive(Debug, Clone)]
pub struct RegisterNode {
    /// The row to write.
    pub beat: HeartbeatNode,
    /// Take over a row of another incarnation that still looks alive, but
    /// only if its beat count is still this one (it did not beat since we
    /// last looked: a crashed predecessor, not a live twin).
    pub takeover: Option<u64>,
}

impl RegisterNode {
    /// Refuse to register over `before`, the row already under this node
    /// id, while it belongs to another process that still looks alive at
    /// `now` — unless `takeover` names its beat count.
    ///
    /// # Errors
    /// [`StoreError::NodeIdInUse`] with the other process's last beat.
    pub fn check(&self, before: Option<&NodeInfo>, now: Timestamp) -> Result<(), StoreError> {
        match before {
            Some(row)
                if row.incarnation != self.beat.incarnation
                    && row.expires_at >= now
                    && self.takeover != Some(row.beats) =>
            {
                Err(StoreError::NodeIdInUse {
                    node: row.id.clone(),
                    heartbeat_at: row.heartbeat_at,
                    interval: row.interval,
                    beats: row.beats,
                    incarnation: row.incarnation.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// What registering did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterReport {
    /// Jobs still held under this node id by a previous process with the same
    /// id, given back to their queues (attempts left), failed, or cancelled.
    pub reclaimed: u64,
}

/// A job running under a node, as its heartbeat reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The execution.
    pub lease: Lease,
    /// When it was claimed (`attempted_at`).
    pub claimed_at: Timestamp,
    /// A user asked to cancel it.
    pub cancel_requested: bool,
}

/// What the database tells a node on heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeBeat {
    /// When the beat was written (the database's time, or the pinned one).
    pub at: Option<Timestamp>,
    /// Every job running under this node: a local handler whose lease is not
    /// here lost its job (rescued) and is told to stop; a lease here that
    /// the node does not know is a claim whose reply was lost.
    pub held: Vec<Held>,
    /// The row was gone (a rescuer thought this node dead) and was written back.
    pub revived: bool,
    /// Another process now owns this node id: nothing was written.
    pub replaced: bool,
    /// Since when this node's beats have come without a stall.
    pub healthy_since: Option<Timestamp>,
}

/// Remove a node that stopped cleanly.
#[derive(Debug, Clone)]
pub struct DeregisterNode {
    /// The node.
    pub node: NodeId,
    /// Only the row of this incarnation (never a successor's).
    pub incarnation: String,
}

/// A registered node, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeInfo {
    /// Its id.
    pub id: NodeId,
    /// The process holding the id.
    pub incarnation: String,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// The job kinds it has handlers for.
    pub kinds: Vec<String>,
    /// How often it beats.
    #[serde(rename = "heartbeat_interval_ms", with = "ms")]
    pub interval: Duration,
    /// How many times its row was written.
    pub beats: u64,
    /// When it registered.
    pub started_at: Timestamp,
    /// Its last heartbeat.
    pub heartbeat_at: Timestamp,
    /// When it counts as dead unless it beats again.
    pub expires_at: Timestamp,
    /// Since when its beats have come without a stall.
    pub healthy_since: Timestamp,
}

impl NodeInfo {
    /// Alive at `now`: its row has not expired.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at >= now
    }

    /// A live node that serves `queue` and has a handler for `kind` (or
    /// takes any kind: [`capstan_core::ANY_KIND`], a pull worker).
    pub fn handles(&self, queue: &str, kind: &str, now: Timestamp) -> bool {
        self.is_live(now)
            && self.queues.iter().any(|q| q == queue)
            && self
                .kinds
                .iter()
                .any(|k| k == kind || k == capstan_core::ANY_KIND)
    }
}

mod ms {
    use std::time::Duration;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

/// Nodes: the processes that hold jobs.
pub trait NodeStore: Send + Sync {
    /// Register a node: jobs a previous process left under the same id are
    /// reclaimed, and unhandled jobs of its queues and kinds are put back in
    /// the claim order.
    ///
    /// Fails with `NodeIdInUse` while another incarnation's row is alive
    /// (unless `takeover` names its beat count).
    fn register_node(
        &self,
        p: &RegisterNode,
    ) -> impl Future<Output = StoreResult<RegisterReport>> + Send;

    /// Record a node's heartbeat (see [`HeartbeatNode`]); returns the jobs it
    /// holds and the cancel requests for them.
    fn heartbeat_node(
        &self,
        p: &HeartbeatNode,
    ) -> impl Future<Output = StoreResult<NodeBeat>> + Send;

    /// Remove a node that stopped cleanly.
    fn deregister_node(&self, p: &DeregisterNode) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every registered node.
    fn list_nodes(&self) -> impl Future<Output = StoreResult<Vec<NodeInfo>>> + Send;
}
