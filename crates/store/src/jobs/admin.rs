//! Operator actions and queries: list, cancel, retry.

use capstan_core::{Job, JobId, JobState, Timestamp};

/// List jobs, newest first (highest id first). A page ends where the next
/// begins with `before` = the last id it returned: ids only grow, so jobs
/// enqueued meanwhile never shift a later page.
#[derive(Debug, Clone, Default)]
pub struct ListJobs {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs carrying this tag.
    pub tag: Option<String>,
    /// Only jobs older than this one (ids below it): the next page.
    pub before: Option<JobId>,
    /// Only these jobs (a live view re-reading the jobs a hint named).
    pub ids: Option<Vec<JobId>>,
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
