//! Queues: counts by state, and removal of a whole queue.

use std::collections::BTreeMap;
use std::future::Future;

use capstan_core::JobState;
use serde::Serialize;

use crate::{StoreError, StoreResult};

/// Jobs of one queue counted by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// The queue.
    pub queue: String,
    /// Waiting for their `run_at`.
    pub scheduled: u64,
    /// Ready to run.
    pub available: u64,
    /// Of the available ones: no live node serving the queue has a handler
    /// for their kind; they wait for one.
    pub unhandled: u64,
    /// Held by a worker.
    pub running: u64,
    /// Waiting for a retry.
    pub retryable: u64,
    /// Finished successfully.
    pub completed: u64,
    /// Finished without success.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl QueueCounts {
    /// Add `n` jobs in `state`.
    pub fn add(&mut self, state: JobState, n: u64) {
        let slot = match state {
            JobState::Scheduled => &mut self.scheduled,
            JobState::Available => &mut self.available,
            JobState::Running => &mut self.running,
            JobState::Retryable => &mut self.retryable,
            JobState::Completed => &mut self.completed,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }
}

impl QueueCounts {
    /// Counts per queue from `(queue, state, count, unhandled count)` rows,
    /// sorted by queue.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a state that is not one of Capstan's.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (String, String, i64, i64)>,
    ) -> StoreResult<Vec<QueueCounts>> {
        let mut by_queue: BTreeMap<String, QueueCounts> = BTreeMap::new();
        for (queue, state, n, unhandled) in rows {
            let state: JobState = state.parse().map_err(|e| StoreError::Corrupt {
                table: "jobs",
                message: format!("state: {e}"),
            })?;
            let counts = by_queue
                .entry(queue.clone())
                .or_insert_with(|| QueueCounts {
                    queue,
                    ..QueueCounts::default()
                });
            counts.add(state, u64::try_from(n).unwrap_or_default());
            counts.unhandled += u64::try_from(unhandled).unwrap_or_default();
        }
        Ok(by_queue.into_values().collect())
    }
}

/// Queues: counts and removal.
pub trait QueueStore: Send + Sync {
    /// Jobs per queue and state.
    fn queue_counts(&self) -> impl Future<Output = StoreResult<Vec<QueueCounts>>> + Send;

    /// Delete every job of a queue (whatever its state); returns how many.
    fn delete_queue(&self, queue: &str) -> impl Future<Output = StoreResult<u64>> + Send;
}
