//! The rescuer: gives back running jobs whose node is dead or whose lease
//! expired. A rescued job keeps its burned attempt (the crash may have been
//! its fault) and runs again if it has attempts left (or ends `cancelled` if
//! a user asked); its old holder is fenced out.
//!
//! An outage is not a death. The rescuer writes its own node's heartbeat in
//! the same transaction before it judges anyone, so it never takes its own
//! node's jobs; and when that beat shows its own writes had stalled (a
//! database outage or failover, a long SQLite write lock), it judges nobody,
//! and from then on gives every node a full node timeout to beat again
//! before it counts it dead (see [`capstan_store::Rescue`]).

use std::sync::Arc;

use capstan_store::{HeartbeatNode, Rescue, RescueReport, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Client;
use crate::node::Shared;

const RESCUE_BATCH: u32 = 1000;

pub(crate) async fn run<S: Store>(shared: Arc<Shared<S>>, stop: CancellationToken) {
    let client = &shared.client;
    let mut tick = tokio::time::interval(client.config.rescue_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        let report = super::bounded("rescue", run_once(client, Some(shared.beat()))).await;
        if let Ok(r) = &report {
            *shared
                .healthy_since
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = r.healthy_since;
        }
        match report {
            Ok(r) if !r.retried.is_empty() || !r.failed.is_empty() || !r.cancelled.is_empty() => {
                tracing::info!(
                    retried = r.retried.len(),
                    failed = r.failed.len(),
                    cancelled = r.cancelled.len(),
                    dead_nodes = r.removed_nodes,
                    "rescued jobs of dead nodes or expired leases"
                )
            }
            Ok(r) if r.stalled => tracing::info!(
                node = %shared.node_id,
                grace = ?client.config.node_timeout,
                "this node's writes had stalled: every node gets a node timeout to beat again before any is judged dead"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "rescue failed"),
        }
    }
}

pub(crate) async fn run_once<S: Store>(
    client: &Client<S>,
    rescuer: Option<HeartbeatNode>,
) -> Result<RescueReport, StoreError> {
    client
        .store
        .rescue(&Rescue {
            rescuer,
            limit: RESCUE_BATCH,
            now: client.clock.pinned(),
        })
        .await
}
