//! Operator actions and queries: list, cancel, retry, counts per queue.

use capstan_core::{Job, JobId, JobState, Timestamp};
use serde::Serialize;

/// List jobs, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListJobs {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this kind.
    pub kind: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// Cancel a job.
#[derive(Debug, Clone)]
pub struct CancelJob {
    /// The job.
    pub id: JobId,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// The job was waiting and is now `cancelled`.
    Cancelled(Job),
    /// The job is running: its holder was asked to stop it.
    Requested(Job),
}

/// Run a job again now.
#[derive(Debug, Clone)]
pub struct RetryJob {
    /// The job.
    pub id: JobId,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

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
