//! The scheduler: moves scheduled and retryable jobs whose time has come to
//! `available` (which wakes their producers). It sleeps until the next due
//! job, at most `schedule_interval`, and wakes early on hints.

use std::sync::Arc;
use std::time::Duration;

use capstan_store::{PromoteDue, PromoteReport, Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Client;

const PROMOTE_BATCH: u32 = 1000;

pub(crate) async fn run<S: Store>(client: Client<S>, wake: Arc<Notify>, stop: CancellationToken) {
    loop {
        let pause = match super::bounded("promote_due", run_once(&client)).await {
            Ok(r) if r.promoted >= u64::from(PROMOTE_BATCH) => Duration::ZERO,
            Ok(r) => r
                .next_due
                .and_then(|due| (due - client.clock.now()).to_std().ok())
                .unwrap_or(client.config.schedule_interval)
                .min(client.config.schedule_interval),
            Err(e) => {
                tracing::warn!(error = %e, "promoting due jobs failed");
                client.config.schedule_interval
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = wake.notified() => {}
            () = stop.cancelled() => break,
        }
    }
}

pub(crate) async fn run_once<S: Store>(client: &Client<S>) -> Result<PromoteReport, StoreError> {
    client
        .store
        .promote_due(&PromoteDue {
            limit: PROMOTE_BATCH,
            now: client.clock.pinned(),
        })
        .await
}
