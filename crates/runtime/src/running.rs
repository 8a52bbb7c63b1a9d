//! What every service of a running node shares: its identity, its
//! handlers, the registry of the jobs it holds ([`Leases`]), the channel to
//! the completer, and the tokens that stop it. The node builds one and hands
//! an `Arc` of it to each service; no service reaches back into the node.
//!
//! Lifecycle of the fields: all are set when the node starts and live until
//! its last service stops; `health` is rewritten by every beat (the
//! heartbeat's and the rescuer's), the tokens fire once each.

use std::sync::Arc;

use capstan_core::{Job, Lease, NodeId, Timestamp};
use capstan_store::Store;
use capstan_store::jobs::Finish;
use capstan_store::nodes::HeartbeatNode;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::LeaseKeeper;
use crate::leases::Leases;
use crate::{Client, Workers};

/// What every service of a running node shares.
pub(crate) struct Shared<S: Store> {
    pub(crate) client: Client<S>,
    pub(crate) node_id: NodeId,
    /// This process, among processes that may share the node id.
    pub(crate) incarnation: String,
    pub(crate) workers: Workers,
    pub(crate) completer: mpsc::Sender<Finish>,
    pub(crate) keeper: Arc<dyn LeaseKeeper>,
    /// Fired after the shutdown grace: handlers still running are handed back.
    pub(crate) hard_stop: CancellationToken,
    /// Fired only by [`NodeHandle::abort`]: everything stops at once and
    /// nothing more is written, as in a crash.
    pub(crate) crash: CancellationToken,
    /// Fired when another process took this node id over: the node stops.
    pub(crate) replaced: CancellationToken,
    /// The executor tasks of running jobs.
    pub(crate) jobs: TaskTracker,
    /// Every job claimed here and not finished yet.
    pub(crate) leases: Leases,
    /// Since when this node's writes have been working, as its last beat
    /// (heartbeat or rescue) said.
    pub(crate) health: Arc<Health>,
}

/// A claimed job, ready to run: its lease, the token that stops it, and until
/// when (at the latest) the database holds the lease for this node.
pub(crate) struct Start {
    pub(crate) job: Job,
    pub(crate) lease: Lease,
    pub(crate) cancel: CancellationToken,
    pub(crate) lease_until: Instant,
}

impl<S: Store> Shared<S> {
    /// This node's heartbeat, as written to its row.
    pub(crate) fn beat(&self) -> HeartbeatNode {
        let config = &self.client.config;
        HeartbeatNode {
            node: self.node_id.clone(),
            incarnation: self.incarnation.clone(),
            queues: config.queues.iter().map(|q| q.name.clone()).collect(),
            kinds: self.workers.kinds(),
            interval: config.heartbeat_interval,
            timeout: config.node_timeout,
            now: self.client.clock.pinned(),
        }
    }
}

/// Since when a node's writes have been working, as its last beat (the
/// heartbeat's or the rescuer's) said; `None` until the first one answers.
/// The rescuer and the parker judge other nodes from it.
#[derive(Debug, Default)]
pub(crate) struct Health(std::sync::Mutex<Option<Timestamp>>);

impl Health {
    pub(crate) fn get(&self) -> Option<Timestamp> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set(&self, since: Option<Timestamp>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = since;
    }
}
