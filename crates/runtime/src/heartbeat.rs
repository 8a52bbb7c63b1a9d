//! The node heartbeat: tells the database this node is alive (so its jobs
//! are not rescued), and learns what it holds there: cancel requests for its
//! jobs (the fallback for backends without LISTEN/NOTIFY and for missed
//! notifications), and jobs taken from it while it was thought dead, whose
//! handlers it stops.
//!
//! A beat that cannot be written is logged once, when the database goes
//! away, and once more when it answers again; the node keeps running its
//! handlers meanwhile (an outage is not a death: see the rescuer).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use capstan_store::jobs::{Finish, Outcome};
use capstan_store::nodes::NodeBeat;
use capstan_store::{Store, StoreError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::running::Shared;

/// What the heartbeat needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeartbeatConfig {
    pub(crate) interval: Duration,
    /// A beat that has not answered after this long counts as failed.
    pub(crate) bound: Duration,
    /// A held job unknown to the node, claimed longer ago, is handed back.
    pub(crate) stray_after: Duration,
}

impl HeartbeatConfig {
    pub(crate) fn of(config: &Config) -> Self {
        HeartbeatConfig {
            interval: config.heartbeat_interval,
            bound: config.node_timeout / 2,
            stray_after: config.stray_after(),
        }
    }
}

/// Beats for its node (see the module docs).
pub(crate) struct Heartbeat<S: Store> {
    shared: Arc<Shared<S>>,
    config: HeartbeatConfig,
}

impl<S: Store> Heartbeat<S> {
    pub(crate) fn new(shared: Arc<Shared<S>>, config: HeartbeatConfig) -> Self {
        Heartbeat { shared, config }
    }

    pub(crate) async fn run(self, stop: CancellationToken) {
        let (shared, config) = (&*self.shared, &self.config);
        let mut ticks = crate::maintenance::Ticks::new(config.interval);
        // The first tick is immediate; registration just beat.
        ticks.next(&stop).await;
        let mut down_since: Option<Instant> = None;
        // Leases the database said we hold and we did not know, at the last beat.
        let mut strays = BTreeSet::new();
        while ticks.next(&stop).await {
            match self.run_once().await {
                Ok(beat) => {
                    strays = hand_back_strays(shared, config, &beat, strays).await;
                    if let Some(since) = down_since.take() {
                        tracing::info!(node = %shared.node_id, after = ?since.elapsed(), "node heartbeat written again: the database is back");
                    }
                }
                Err(e) => {
                    if down_since.is_none() {
                        tracing::warn!(node = %shared.node_id, error = %e, "node heartbeat failed; running jobs go on, retrying every heartbeat interval");
                        down_since = Some(Instant::now());
                    } else {
                        tracing::debug!(node = %shared.node_id, error = %e, "node heartbeat failed again");
                    }
                }
            }
        }
    }

    /// One beat, and what follows from its answer.
    pub(crate) async fn run_once(&self) -> Result<NodeBeat, StoreError> {
        run_once(&self.shared, &self.config).await
    }
}

/// Hand back the leases the database says this node holds and this node did
/// not know at this beat nor at the one before (so not a claim whose reply
/// is being read this very moment): their claim's reply was lost. Returns
/// the ones seen for the first time.
async fn hand_back_strays<S: Store>(
    shared: &Shared<S>,
    config: &HeartbeatConfig,
    beat: &NodeBeat,
    before: BTreeSet<capstan_core::Lease>,
) -> BTreeSet<capstan_core::Lease> {
    let Some(at) = beat.at else {
        return BTreeSet::new();
    };
    let after = chrono::Duration::from_std(config.stray_after).unwrap_or_default();
    // Only claims old enough that no buffered job of theirs may still start
    // without a fresh lease (see `Config::stray_after`).
    let old: BTreeSet<_> = beat
        .held
        .iter()
        .filter(|h| h.claimed_at + after < at)
        .map(|h| h.lease.clone())
        .collect();
    let unknown = shared.leases.unknown(&old);
    let (again, new): (BTreeSet<_>, BTreeSet<_>) =
        unknown.into_iter().partition(|l| before.contains(l));
    for lease in again {
        tracing::warn!(%lease, "this node holds a job it never received (a claim's reply was lost): handing it back");
        let finish = Finish {
            lease,
            outcome: Outcome::HandBack,
        };
        if shared.completer.send(finish).await.is_err() {
            break;
        }
    }
    new
}

async fn run_once<S: Store>(
    shared: &Shared<S>,
    config: &HeartbeatConfig,
) -> Result<NodeBeat, StoreError> {
    let asked_at = Instant::now();
    // Bounded: a connection that hangs (no answer, no error) must not stop
    // the beats that follow.
    let bound = config.bound;
    let beat = match tokio::time::timeout(bound, shared.client.store.heartbeat_node(&shared.beat()))
        .await
    {
        Ok(beat) => beat?,
        Err(_) => {
            return Err(StoreError::Unavailable {
                operation: "heartbeat_node",
                source: format!("no answer within {bound:?}").into(),
            });
        }
    };
    shared.health.set(beat.healthy_since);
    if beat.replaced {
        shared.leases.give_all_back();
        shared.replaced.cancel();
        return Ok(beat);
    }
    if beat.revived {
        tracing::warn!(node = %shared.node_id, "this node was thought dead (its row was removed): its jobs were rescued; stopping their handlers here");
    }
    let held: BTreeSet<_> = beat.held.iter().map(|h| h.lease.clone()).collect();
    shared.leases.keep_only(&held, asked_at);
    for h in beat.held.iter().filter(|h| h.cancel_requested) {
        shared.leases.cancel(&h.lease);
    }
    Ok(beat)
}
