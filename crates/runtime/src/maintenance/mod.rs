//! Maintenance services: each is a type with its own config slice, does one
//! job on an interval (`run(self, stop)`), has a crate-private `run_once`
//! that tests call, and is safe to run on every node at once (the SQL skips
//! rows another node is working on). [`Maintainer`] is the group: the
//! scheduler and the parker run on every node, the rescuer and the cleaner
//! on the leader only (see `leader`).

pub(crate) mod cleaner;
pub(crate) mod leader;
pub(crate) mod parker;
pub(crate) mod rescuer;
pub(crate) mod scheduler;

#[cfg(test)]
pub(crate) mod tests;

use std::future::Future;
use std::time::Duration;

use capstan_store::{Store, StoreError, StoreResult};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use cleaner::{Cleaner, CleanerConfig};
pub(crate) use leader::{Elector, ElectorConfig, Led};
pub(crate) use parker::{Parker, ParkerConfig};
pub(crate) use rescuer::{Rescuer, RescuerConfig};
pub(crate) use scheduler::{Scheduler, SchedulerConfig};

/// The ticks of a service that works on an interval: the first at once, the
/// next `interval` after the previous one started (a slow pass delays the
/// next tick rather than bunching ticks up), none once `stop` fires.
pub(crate) struct Ticks(tokio::time::Interval);

impl Ticks {
    pub(crate) fn new(interval: Duration) -> Self {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks(tick)
    }

    /// Wait for the next tick; false once `stop` fired.
    pub(crate) async fn next(&mut self, stop: &CancellationToken) -> bool {
        tokio::select! {
            _ = self.0.tick() => true,
            () = stop.cancelled() => false,
        }
    }
}

/// The maintenance services of a node, started and stopped together: the
/// scheduler, the parker, and the elector with the services it runs while
/// leading.
pub(crate) struct Maintainer<S> {
    pub(crate) scheduler: Scheduler<S>,
    pub(crate) parker: Parker<S>,
    pub(crate) elector: Elector<S>,
    pub(crate) led: Led<S>,
}

impl<S: Store> Maintainer<S> {
    /// Run every service until `stop` fires; returns once all have stopped.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let services = TaskTracker::new();
        services.spawn(self.scheduler.run(stop.clone()));
        services.spawn(self.parker.run(stop.clone()));
        services.spawn(self.elector.run(self.led, stop));
        services.close();
        services.wait().await;
    }
}

/// A maintenance call that has not answered after this long (a connection
/// that hangs without an error) is abandoned, so its service goes on.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `call`, abandoned as unavailable after [`CALL_TIMEOUT`].
pub(crate) async fn bounded<T>(
    operation: &'static str,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable {
                operation,
                source: format!("no answer within {CALL_TIMEOUT:?}").into(),
            })
        })
}
