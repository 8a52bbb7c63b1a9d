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
//! before it counts it dead (see [`capstan_store::jobs::Rescue`]).

use std::sync::Arc;
use std::time::Duration;

use capstan_core::Clock;
use capstan_store::jobs::{Rescue, RescueReport};
use capstan_store::nodes::HeartbeatNode;
use capstan_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::running::Health;

/// What the rescuer needs of the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RescuerConfig {
    pub(crate) interval: Duration,
    /// Most jobs rescued per pass.
    pub(crate) batch: u32,
}

impl RescuerConfig {
    pub(crate) fn of(config: &Config) -> Self {
        RescuerConfig {
            interval: config.rescue_interval,
            batch: 1000,
        }
    }
}

/// Rescues lost jobs (see the module docs), beating as its node.
#[derive(Clone)]
pub(crate) struct Rescuer<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: RescuerConfig,
    /// Its node's heartbeat (`now` filled in at each pass).
    beat: HeartbeatNode,
    /// Its node's health, which each pass's beat updates.
    health: Arc<Health>,
}

impl<S: Store> Rescuer<S> {
    pub(crate) fn new(
        store: S,
        clock: Arc<dyn Clock>,
        config: RescuerConfig,
        beat: HeartbeatNode,
        health: Arc<Health>,
    ) -> Self {
        Rescuer {
            store,
            clock,
            config,
            beat,
            health,
        }
    }

    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut ticks = super::Ticks::new(self.config.interval);
        while ticks.next(&stop).await {
            match super::bounded("rescue", self.run_once()).await {
                Ok(r)
                    if !r.retried.is_empty() || !r.failed.is_empty() || !r.cancelled.is_empty() =>
                {
                    tracing::info!(
                        retried = r.retried.len(),
                        failed = r.failed.len(),
                        cancelled = r.cancelled.len(),
                        dead_nodes = r.removed_nodes,
                        "rescued jobs of dead nodes or expired leases"
                    )
                }
                Ok(r) if r.stalled => tracing::info!(
                    node = %self.beat.node,
                    grace = ?self.beat.timeout,
                    "this node's writes had stalled: every node gets a node timeout to beat again before any is judged dead"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "rescue failed"),
            }
        }
    }

    /// One pass: beat, then judge (at most one batch); the beat's health is
    /// recorded for the parker.
    pub(crate) async fn run_once(&self) -> Result<RescueReport, StoreError> {
        let report = self
            .store
            .rescue(&Rescue {
                rescuer: Some(HeartbeatNode {
                    now: self.clock.pinned(),
                    ..self.beat.clone()
                }),
                limit: self.config.batch,
                now: self.clock.pinned(),
            })
            .await?;
        self.health.set(report.healthy_since);
        Ok(report)
    }
}
