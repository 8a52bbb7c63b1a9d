//! The cleaner: deletes finished jobs past their retention (completed after
//! `retain_completed`, failed and cancelled after `retain_failed`), in
//! bounded batches so that no statement holds locks for long.

use std::time::Duration;

use capstan_store::{DeleteFinished, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Client;

pub(crate) async fn run<S: Store>(client: Client<S>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(client.config.clean_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        // Batch after batch while there is a backlog, yielding to stop.
        loop {
            match super::bounded("delete_finished", run_once(&client)).await {
                Ok(n) if n >= u64::from(client.config.clean_batch) => {
                    tracing::debug!(deleted = n, "cleaner deleted a batch; continuing");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                        () = stop.cancelled() => return,
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cleaning finished jobs failed");
                    break;
                }
            }
        }
    }
}

/// One batch per finished state; returns how many jobs were deleted. Ages
/// are measured on the database's clock (the one `finished_at` was written
/// with), so nodes with skewed clocks agree.
pub(crate) async fn run_once<S: Store>(client: &Client<S>) -> Result<u64, StoreError> {
    client
        .store
        .delete_finished(&DeleteFinished {
            completed_after: client.config.retain_completed,
            failed_after: client.config.retain_failed,
            limit: client.config.clean_batch,
            now: client.clock.pinned(),
        })
        .await
}
