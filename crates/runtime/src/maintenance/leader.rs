//! The elector: makes one node of those sharing a database the leader of
//! the cluster-wide maintenance (rescuer, cleaner), so that N nodes cost
//! the database one node's passes, not N.
//!
//! It bids every heartbeat interval for a term of one node timeout, runs
//! the leader's services while its bids win, stops them when a bid loses,
//! and resigns when the node stops, so that another node takes over at its
//! next bid rather than at the end of the term. A leader that dies is
//! replaced once its term ends: about when its node row expires, so its
//! jobs are rescued about as soon as they were when every node rescued.
//! A bid that fails (the database is unreachable) changes nothing: a
//! leader keeps its services running (they retry on their own), a
//! follower stays idle. Two leaders at once, for a moment, are harmless
//! (see the store's `leader` module); no leader for a while only delays
//! rescues. Not led: the scheduler, because a node that schedules a job
//! wakes its own scheduler for it, and the parker, because it walks the
//! heads of its own node's queues only (a leader serving other queues
//! would leave theirs stalled behind jobs nobody can run). The cleaner
//! applies the leader's retention settings: nodes sharing a database
//! should share them.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::{Clock, NodeId};
use capstan_store::leader::{ElectLeader, ResignLeader};
use capstan_store::{Store, StoreResult};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Cleaner, Rescuer};
use crate::Config;

/// What the elector needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ElectorConfig {
    /// How often it bids (the heartbeat interval).
    pub(crate) interval: Duration,
    /// How long a won term lasts (the node timeout).
    pub(crate) term: Duration,
}

impl ElectorConfig {
    pub(crate) fn of(config: &Config) -> Self {
        ElectorConfig {
            interval: config.heartbeat_interval,
            term: config.node_timeout,
        }
    }
}

/// The services only the leader runs.
#[derive(Clone)]
pub(crate) struct Led<S> {
    pub(crate) rescuer: Rescuer<S>,
    pub(crate) cleaner: Cleaner<S>,
}

impl<S: Store> Led<S> {
    fn spawn(&self, stop: &CancellationToken) -> TaskTracker {
        let services = TaskTracker::new();
        services.spawn(self.rescuer.clone().run(stop.clone()));
        services.spawn(self.cleaner.clone().run(stop.clone()));
        services.close();
        services
    }
}

/// Bids for leadership as its node (see the module docs).
pub(crate) struct Elector<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: ElectorConfig,
    node: NodeId,
    incarnation: String,
}

impl<S: Store> Elector<S> {
    pub(crate) fn new(
        store: S,
        clock: Arc<dyn Clock>,
        config: ElectorConfig,
        node: NodeId,
        incarnation: String,
    ) -> Self {
        Elector {
            store,
            clock,
            config,
            node,
            incarnation,
        }
    }

    /// Bid until `stop` fires, running `led` while this node leads; then
    /// stop them and resign.
    pub(crate) async fn run(self, led: Led<S>, stop: CancellationToken) {
        let mut ticks = super::Ticks::new(self.config.interval);
        let mut leading: Option<(CancellationToken, TaskTracker)> = None;
        while ticks.next(&stop).await {
            match super::bounded("elect_leader", self.bid()).await {
                Ok(true) if leading.is_none() => {
                    tracing::info!(node = %self.node, "this node leads the maintenance services");
                    let token = stop.child_token();
                    let services = led.spawn(&token);
                    leading = Some((token, services));
                }
                Ok(false) => {
                    if let Some((token, services)) = leading.take() {
                        tracing::info!(node = %self.node, "another node leads the maintenance services now: stopping them here");
                        token.cancel();
                        services.wait().await;
                    }
                }
                Ok(true) => {}
                Err(e) => tracing::warn!(error = %e, "bidding for leadership failed; trying again"),
            }
        }
        if let Some((token, services)) = leading {
            token.cancel();
            services.wait().await;
            if let Err(e) = super::bounded("resign_leader", self.resign()).await {
                tracing::warn!(error = %e, "resigning leadership failed: another node takes over when the term ends");
            }
        }
    }

    /// One bid: true if this node leads for the next term.
    pub(crate) async fn bid(&self) -> StoreResult<bool> {
        self.store
            .elect_leader(&ElectLeader {
                node: self.node.clone(),
                incarnation: self.incarnation.clone(),
                term: self.config.term,
                now: self.clock.pinned(),
            })
            .await
    }

    /// Give the term up.
    pub(crate) async fn resign(&self) -> StoreResult<()> {
        self.store
            .resign_leader(&ResignLeader {
                node: self.node.clone(),
                incarnation: self.incarnation.clone(),
            })
            .await
    }
}
