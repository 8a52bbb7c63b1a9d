//! The scheduler: moves scheduled and retryable jobs whose time has come to
//! `available` (which wakes their producers). It sleeps until the next due
//! job, at most `schedule_interval`, and wakes early on hints.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::Clock;
use capstan_store::jobs::{PromoteDue, PromoteReport};
use capstan_store::{Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Config;

/// What the scheduler needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchedulerConfig {
    /// The longest it sleeps between two promotions.
    pub(crate) interval: Duration,
    /// Most jobs promoted per statement; a full batch promotes again at once.
    pub(crate) batch: u32,
}

impl SchedulerConfig {
    pub(crate) fn of(config: &Config) -> Self {
        SchedulerConfig {
            interval: config.schedule_interval,
            batch: 1000,
        }
    }
}

/// Promotes due jobs (see the module docs).
pub(crate) struct Scheduler<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    /// Notified when jobs may have been scheduled sooner than it sleeps.
    wake: Arc<Notify>,
}

impl<S: Store> Scheduler<S> {
    pub(crate) fn new(
        store: S,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
        wake: Arc<Notify>,
    ) -> Self {
        Scheduler {
            store,
            clock,
            config,
            wake,
        }
    }

    pub(crate) async fn run(self, stop: CancellationToken) {
        let interval = self.config.interval;
        loop {
            let pause = match super::bounded("promote_due", self.run_once()).await {
                Ok(r) if r.promoted >= u64::from(self.config.batch) => Duration::ZERO,
                Ok(r) => r
                    .next_due
                    .and_then(|due| (due - self.clock.now()).to_std().ok())
                    .unwrap_or(interval)
                    .min(interval),
                Err(e) => {
                    tracing::warn!(error = %e, "promoting due jobs failed");
                    interval
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.wake.notified() => {}
                () = stop.cancelled() => break,
            }
        }
    }

    /// One promotion of the due jobs (one batch).
    pub(crate) async fn run_once(&self) -> Result<PromoteReport, StoreError> {
        self.store
            .promote_due(&PromoteDue {
                limit: self.config.batch,
                now: self.clock.pinned(),
            })
            .await
    }
}
