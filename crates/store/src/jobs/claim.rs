//! Claim: take up to `limit` available jobs of one queue for one node.

use std::time::Duration;

use capstan_core::{Job, JobId, NodeId, Timestamp};

/// Claim up to `limit` available jobs of `queue`, highest priority first, then
/// oldest `run_at`, then lowest id, skipping jobs set aside as unhandled. Each
/// claimed job becomes `running`, held by `node` under a new attempt number
/// and a lease token drawn at random for this claim (with the job's id it
/// names one execution: see [`capstan_core::Lease`]), with a lease
/// of its timeout (at most one year) plus `lease_grace` from the claim.
///
/// With `after`, only jobs that come after that key in this order are
/// taken: a producer draining a backlog resumes where its last full claim
/// ended instead of walking, on PostgreSQL, past the claim index's entries
/// of every job claimed since the last vacuum. Jobs that sort before the key
/// (a higher priority enqueued meanwhile, a retry or hand-back with an older
/// `run_at`) are not seen by such a claim: the caller claims from the start
/// again when it hears of new jobs or a claim comes back short.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The queue to claim from.
    pub queue: String,
    /// Only these kinds (`None` = any kind).
    pub kinds: Option<Vec<String>>,
    /// At most this many jobs.
    pub limit: u32,
    /// The claiming node.
    pub node: NodeId,
    /// Timeout for jobs that do not carry their own.
    pub default_timeout: Duration,
    /// The lease is `timeout + lease_grace` from the claim.
    pub lease_grace: Duration,
    /// The claim time; `None` = the database's clock.
    pub now: Option<Timestamp>,
    /// Only jobs after this key in claim order (`None` = from the start).
    pub after: Option<ClaimKey>,
}

/// Where a job sorts in claim order: priority (highest first), then
/// `run_at`, then id. Its `Ord` is that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimKey {
    /// The job's priority.
    pub priority: i16,
    /// When it became due.
    pub run_at: Timestamp,
    /// Its id.
    pub id: JobId,
}

impl Ord for ClaimKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .priority
            .cmp(&self.priority)
            .then(self.run_at.cmp(&other.run_at))
            .then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for ClaimKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl ClaimKey {
    /// The key of `job`.
    pub fn of(job: &Job) -> Self {
        ClaimKey {
            priority: job.priority,
            run_at: job.run_at,
            id: job.id,
        }
    }
}
