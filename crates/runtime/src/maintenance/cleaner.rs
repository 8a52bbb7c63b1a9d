//! The cleaner: deletes finished jobs past their retention (completed after
//! `retain_completed`, failed and cancelled after `retain_failed`), in
//! bounded batches so that no statement holds locks for long.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::Clock;
use capstan_store::jobs::DeleteFinished;
use capstan_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Config;

/// What the cleaner needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CleanerConfig {
    pub(crate) interval: Duration,
    pub(crate) retain_completed: Duration,
    pub(crate) retain_failed: Duration,
    /// Most jobs deleted per statement and state.
    pub(crate) batch: u32,
}

impl CleanerConfig {
    pub(crate) fn of(config: &Config) -> Self {
        CleanerConfig {
            interval: config.clean_interval,
            retain_completed: config.retain_completed,
            retain_failed: config.retain_failed,
            batch: config.clean_batch,
        }
    }
}

/// Deletes old finished jobs (see the module docs).
#[derive(Clone)]
pub(crate) struct Cleaner<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: CleanerConfig,
}

impl<S: Store> Cleaner<S> {
    pub(crate) fn new(store: S, clock: Arc<dyn Clock>, config: CleanerConfig) -> Self {
        Cleaner {
            store,
            clock,
            config,
        }
    }

    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut ticks = super::Ticks::new(self.config.interval);
        while ticks.next(&stop).await {
            // Batch after batch while there is a backlog, yielding to stop.
            loop {
                match super::bounded("delete_finished", self.run_once()).await {
                    Ok(n) if n >= u64::from(self.config.batch) => {
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

    /// One batch per finished state; returns how many jobs were deleted.
    /// Ages are measured on the database's clock (the one `finished_at` was
    /// written with), so nodes with skewed clocks agree.
    pub(crate) async fn run_once(&self) -> Result<u64, StoreError> {
        self.store
            .delete_finished(&DeleteFinished {
                completed_after: self.config.retain_completed,
                failed_after: self.config.retain_failed,
                limit: self.config.batch,
                now: self.clock.pinned(),
            })
            .await
    }
}
