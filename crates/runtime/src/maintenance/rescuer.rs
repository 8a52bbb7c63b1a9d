//! The rescuer: gives back running jobs whose node stopped heartbeating
//! (`node_timeout`) or whose lease expired. A rescued job keeps its burned
//! attempt (the crash may have been its fault) and runs again if it has
//! attempts left; its old holder is fenced out.

use capstan_store::{Rescue, RescueReport, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Client;

const RESCUE_BATCH: u32 = 1000;

pub(crate) async fn run<S: Store>(client: Client<S>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(client.config.rescue_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        match run_once(&client).await {
            Ok(r) if !r.retried.is_empty() || !r.failed.is_empty() => tracing::info!(
                retried = r.retried.len(),
                failed = r.failed.len(),
                dead_nodes = r.removed_nodes,
                "rescued jobs of dead nodes or expired leases"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "rescue failed"),
        }
    }
}

pub(crate) async fn run_once<S: Store>(client: &Client<S>) -> Result<RescueReport, StoreError> {
    client
        .store
        .rescue(&Rescue {
            node_timeout: client.config.node_timeout,
            limit: RESCUE_BATCH,
            now: client.clock.pinned(),
        })
        .await
}
