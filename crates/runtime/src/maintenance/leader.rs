//! The elector: makes one node of those sharing a database the leader of
//! the cluster-wide maintenance (rescuer, cleaner), so that N nodes cost
//! the database one node's passes, not N.
//!
//! It bids every heartbeat interval for a term of three intervals (two
//! missed bids are survived), runs the leader's services while its bids
//! win, stops them when a bid loses, and resigns when the node stops
//! cleanly, so that another node takes over at its next bid rather than at
//! the end of the term. A leader that dies is replaced once its term ends,
//! before its node row expires (a node timeout is at least three
//! intervals), so its jobs are rescued about as soon as they were when
//! every node rescued. The term is not the node timeout: a node with a
//! long one (a batch host) would then hold every other node's rescues back
//! for that long after it died. A crashed node (`NodeHandle::abort`)
//! writes nothing more, its resignation included.
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
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Cleaner, Rescuer};
use crate::Config;

/// What the elector needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ElectorConfig {
    /// How often it bids (the heartbeat interval).
    pub(crate) interval: Duration,
    /// How long a won term lasts (three intervals).
    pub(crate) term: Duration,
}

impl ElectorConfig {
    pub(crate) fn of(config: &Config) -> Self {
        ElectorConfig {
            interval: config.heartbeat_interval,
            term: config.heartbeat_interval * 3,
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
    /// The led services' names, in the order of [`Leading::services`].
    const NAMES: [&'static str; 2] = ["rescuer", "cleaner"];

    /// Led service `i` (see [`Led::NAMES`]), running until `stop` fires.
    fn spawn(&self, i: usize, stop: &CancellationToken) -> JoinHandle<()> {
        match i {
            0 => tokio::spawn(self.rescuer.clone().run(stop.clone())),
            _ => tokio::spawn(self.cleaner.clone().run(stop.clone())),
        }
    }

    fn start(&self, stop: CancellationToken) -> Leading {
        Leading {
            services: std::array::from_fn(|i| self.spawn(i, &stop)),
            stop,
        }
    }

    /// Start again any service of `leading` that ended while it should
    /// run (only a panic ends one before its stop fires).
    fn restart_ended(&self, leading: &mut Leading) {
        for (i, service) in leading.services.iter_mut().enumerate() {
            if service.is_finished() {
                tracing::error!(
                    service = Self::NAMES[i],
                    "a led service stopped while this node leads: starting it again"
                );
                *service = self.spawn(i, &leading.stop);
            }
        }
    }
}

/// The led services while this node leads.
struct Leading {
    stop: CancellationToken,
    services: [JoinHandle<()>; 2],
}

impl Leading {
    async fn stop(self) {
        self.stop.cancel();
        for service in self.services {
            let _ = service.await; // a panic was logged by the runtime already
        }
    }
}

/// Bids for leadership as its node (see the module docs).
pub(crate) struct Elector<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: ElectorConfig,
    node: NodeId,
    incarnation: String,
    /// Fires when the node crashes (aborts): then it does not resign.
    crash: CancellationToken,
}

impl<S: Store> Elector<S> {
    pub(crate) fn new(
        store: S,
        clock: Arc<dyn Clock>,
        config: ElectorConfig,
        node: NodeId,
        incarnation: String,
        crash: CancellationToken,
    ) -> Self {
        Elector {
            store,
            clock,
            config,
            node,
            incarnation,
            crash,
        }
    }

    /// Bid until `stop` fires, running `led` while this node leads; then
    /// stop them and resign.
    pub(crate) async fn run(self, led: Led<S>, stop: CancellationToken) {
        let mut ticks = super::Ticks::new(self.config.interval);
        let mut leading: Option<Leading> = None;
        // Since when bids have failed: past a term, perhaps no node leads.
        let mut failing_since = None;
        while ticks.next(&stop).await {
            let bid = super::bounded("elect_leader", self.bid()).await;
            if bid.is_ok() {
                failing_since = None;
            }
            match bid {
                Ok(true) => match leading.as_mut() {
                    None => {
                        tracing::info!(node = %self.node, "this node leads the maintenance services");
                        leading = Some(led.start(stop.child_token()));
                    }
                    Some(running) => led.restart_ended(running),
                },
                Ok(false) => {
                    if let Some(running) = leading.take() {
                        tracing::info!(node = %self.node, "another node leads the maintenance services now: stopping them here");
                        running.stop().await;
                    }
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= self.config.term {
                        tracing::error!(error = %e, failing_for = ?since.elapsed(), "bids for leadership keep failing: if every node's do, no node rescues or cleans (check the role's rights on the leader table)");
                    } else {
                        tracing::warn!(error = %e, "bidding for leadership failed; trying again");
                    }
                }
            }
        }
        if let Some(running) = leading {
            running.stop().await;
            if self.crash.is_cancelled() {
                return; // a crash writes nothing more
            }
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
