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

use capstan_store::{NodeBeat, Store, StoreError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::node::Shared;

pub(crate) async fn run<S: Store>(shared: Arc<Shared<S>>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.client.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; registration just beat
    let mut down_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        match run_once(&shared).await {
            Ok(_) => {
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
pub(crate) async fn run_once<S: Store>(shared: &Shared<S>) -> Result<NodeBeat, StoreError> {
    let asked_at = Instant::now();
    // Bounded: a connection that hangs (no answer, no error) must not stop
    // the beats that follow.
    let bound = shared.client.config.node_timeout / 2;
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
    if beat.replaced {
        shared.leases.cancel_all();
        shared.replaced.cancel();
        return Ok(beat);
    }
    if beat.revived {
        tracing::warn!(node = %shared.node_id, "this node was thought dead (its row was removed): its jobs were rescued; stopping their handlers here");
    }
    let held: BTreeSet<_> = beat.held.iter().cloned().collect();
    shared.leases.keep_only(&held, asked_at);
    for lease in &beat.cancel_requested {
        shared.leases.cancel(lease, "a user asked to cancel it");
    }
    Ok(beat)
}
