//! Building reports from the rows a statement returned. Both backends return
//! the same facts in different row types; turning them into reports happens
//! once, here.

use std::collections::{BTreeMap, BTreeSet};

use capstan_core::{Job, JobId, JobState};

use crate::{Finish, FinishReport, QueueCounts, RescueReport, StoreError, StoreResult};

/// Put claimed jobs in claim order: highest priority, then oldest `run_at`,
/// then lowest id (`RETURNING` gives rows in no promised order).
pub fn sort_in_claim_order(jobs: &mut [Job]) {
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.id.cmp(&b.id))
    });
}

impl FinishReport {
    /// The report of a batch finish whose statement changed the rows `written`.
    pub fn from_written(finishes: &[Finish], written: &BTreeSet<i64>) -> Self {
        let mut report = FinishReport::default();
        for f in finishes {
            if written.contains(&f.id.0) {
                report.finished.push(f.id);
            } else {
                report.fenced.push(f.id);
            }
        }
        report
    }
}

impl RescueReport {
    /// The report of a rescue that returned `(id, new state, queue)` rows.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (JobId, JobState, String)>,
        removed_nodes: u64,
    ) -> Self {
        let mut report = RescueReport {
            removed_nodes,
            ..RescueReport::default()
        };
        let mut queues = BTreeSet::new();
        for (id, state, queue) in rows {
            if state == JobState::Failed {
                report.failed.push(id);
            } else {
                report.retried.push(id);
                queues.insert(queue);
            }
        }
        report.queues = queues.into_iter().collect();
        report
    }
}

impl QueueCounts {
    /// Counts per queue from `(queue, state, count)` rows, sorted by queue.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a state that is not one of Capstan's.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (String, String, i64)>,
    ) -> StoreResult<Vec<QueueCounts>> {
        let mut by_queue: BTreeMap<String, QueueCounts> = BTreeMap::new();
        for (queue, state, n) in rows {
            let state: JobState = state.parse().map_err(|e| StoreError::Corrupt {
                table: "jobs",
                message: format!("state: {e}"),
            })?;
            by_queue
                .entry(queue.clone())
                .or_insert_with(|| QueueCounts {
                    queue,
                    ..QueueCounts::default()
                })
                .add(state, u64::try_from(n).unwrap_or_default());
        }
        Ok(by_queue.into_values().collect())
    }
}

impl StoreError {
    /// An operator action (`cancel`, `retry`) that changed no row: the job is
    /// missing (`state` is `None`) or in a state that refuses the action.
    pub fn refused(job_id: JobId, state: Option<JobState>, action: &'static str) -> Self {
        match state {
            None => StoreError::NotFound { job_id },
            Some(state) => StoreError::InvalidTransition {
                job_id,
                state,
                action,
            },
        }
    }
}
