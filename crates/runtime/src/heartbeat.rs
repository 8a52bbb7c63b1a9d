//! The node heartbeat: tells the database this node is alive (so its jobs
//! are not rescued) and hears cancel requests for the jobs it runs — the
//! fallback for backends without LISTEN/NOTIFY and for missed notifications.

use std::sync::Arc;

use capstan_store::{HeartbeatNode, Store};
use tokio_util::sync::CancellationToken;

use crate::node::Shared;

pub(crate) async fn run<S: Store>(shared: Arc<Shared<S>>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.client.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; registration just beat
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        run_once(&shared).await;
    }
}

pub(crate) async fn run_once<S: Store>(shared: &Shared<S>) {
    let beat = shared
        .client
        .store
        .heartbeat_node(&HeartbeatNode {
            node: shared.node_id.clone(),
            now: shared.client.clock.pinned(),
        })
        .await;
    match beat {
        Ok(beat) => {
            for (id, attempt) in beat.cancel_requested {
                shared.cancel_running(id, Some(attempt));
            }
        }
        Err(e) => tracing::warn!(node = %shared.node_id, error = %e, "node heartbeat failed"),
    }
}
