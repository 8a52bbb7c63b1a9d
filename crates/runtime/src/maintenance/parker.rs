//! The parker: sets aside available jobs that no live node can run — a kind
//! nobody has a handler for in that queue (a typo, an enqueuer deployed before
//! its workers, a worker removed). They leave the claim order, so they never
//! make a claim slower however many pile up, and wait as `unhandled` (shown
//! by `capstan queues` and `jobs list`) until a node with a handler for their
//! kind registers or beats, which puts them back.
//!
//! It looks only at the head of each queue's claim order: jobs deeper in the
//! queue cost a claim nothing until they reach the head. It judges liveness
//! as the rescuer does, from its node's own health: right after an outage,
//! when every node's row has expired, every node still counts as live, and
//! nothing is set aside.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::{Clock, Timestamp};
use capstan_store::jobs::MarkUnhandled;
use capstan_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::running::Health;

/// What the parker needs of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct ParkerConfig {
    pub(crate) interval: Duration,
    /// The queues whose heads it looks at.
    pub(crate) queues: Vec<String>,
    /// Jobs looked at per statement (the head of the claim order).
    pub(crate) batch: u32,
}

impl ParkerConfig {
    pub(crate) fn of(config: &Config) -> Self {
        ParkerConfig {
            interval: config.rescue_interval,
            queues: config.queues.iter().map(|q| q.name.clone()).collect(),
            batch: 100,
        }
    }
}

/// Sets aside jobs no live node can run (see the module docs).
pub(crate) struct Parker<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: ParkerConfig,
    /// Its node's health: until it is known, the parker judges nobody.
    health: Arc<Health>,
}

impl<S: Store> Parker<S> {
    pub(crate) fn new(
        store: S,
        clock: Arc<dyn Clock>,
        config: ParkerConfig,
        health: Arc<Health>,
    ) -> Self {
        Parker {
            store,
            clock,
            config,
            health,
        }
    }

    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut ticks = super::Ticks::new(self.config.interval);
        while ticks.next(&stop).await {
            // Until this node knows its own health, it judges nobody.
            let Some(since) = self.health.get() else {
                continue;
            };
            match self.run_once(since, &stop).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    jobs = n,
                    "set aside jobs that no live node has a handler for; they wait for one (see `capstan queues`)"
                ),
                Err(e) => tracing::warn!(error = %e, "setting aside unhandled jobs failed"),
            }
        }
    }

    /// Set aside the unhandled jobs at the head of every queue it looks at,
    /// judging liveness from `healthy_since`; returns how many.
    pub(crate) async fn run_once(
        &self,
        healthy_since: Timestamp,
        stop: &CancellationToken,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        for queue in &self.config.queues {
            while !stop.is_cancelled() {
                let p = MarkUnhandled {
                    queue: queue.clone(),
                    limit: self.config.batch,
                    healthy_since,
                    now: self.clock.pinned(),
                };
                let n = super::bounded("mark_unhandled", self.store.mark_unhandled(&p)).await?;
                total += n;
                // Some were set aside: the next jobs are at the head now.
                if n == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(total)
    }
}
