//! Jobs: the noun, its store trait, and one area module per part of a
//! job's life — the same areas as the backends' `jobs/` modules, their
//! `queries/jobs/` files and the conformance suite's cases: `enqueue`,
//! `claim`, `finish` (and lease extension), `rescue`, `maintenance`
//! (promote, set aside, delete), `admin` (read, list, cancel, retry).

mod admin;
mod batch;
mod claim;
mod enqueue;
mod finish;
mod maintenance;
mod report;
mod rescue;

use std::future::Future;

use capstan_core::{Job, JobId};

use crate::StoreResult;

pub use admin::{CancelJob, CancelOutcome, ListJobs, RetryJob};
pub use batch::{FinishRow, InsertRow, encode, extension_rows_json, finish_rows_json};
pub use claim::{Claim, ClaimKey};
pub use enqueue::{InsertMany, Inserted};
pub use finish::{ErrorRecord, ExtendLeases, Extension, Finish, FinishMany, LeaseReport, Outcome};
pub use maintenance::{DeleteFinished, MarkUnhandled, PromoteDue, PromoteReport};
pub use report::{fail_corrupt, sort_in_claim_order};
pub use rescue::{Rescue, RescueReport};

/// Jobs: enqueue, claim, finish, and the maintenance of their table.
///
/// Every write that can make a job runnable — `insert_many`, `promote_due`,
/// `rescue`, a `finish_many` that hands back or retries at once,
/// `retry_job`, and `register_node` when it reclaims or un-sets-aside jobs —
/// sends one [`crate::Topic::JOBS`] notification naming the queues (or `*`)
/// once it commits; `cancel_job` of a running job sends
/// [`crate::Topic::CONTROL`]. The conformance area `notify` checks each.
pub trait JobStore: Send + Sync {
    /// Insert many jobs in one round trip and one transaction, honouring
    /// idempotency and dedupe keys.
    fn insert_many(
        &self,
        p: &InsertMany,
    ) -> impl Future<Output = StoreResult<Vec<Inserted>>> + Send;

    /// Claim a batch of available jobs for a node (see [`Claim`]). A claimed
    /// row that cannot be decoded is failed on its own, never returned, and
    /// never strands the rest of the batch.
    fn claim(&self, p: &Claim) -> impl Future<Output = StoreResult<Vec<Job>>> + Send;

    /// Finish a batch of attempts; rows whose lease is no longer current are
    /// reported as fenced and left untouched.
    fn finish_many(&self, p: &FinishMany) -> impl Future<Output = StoreResult<LeaseReport>> + Send;

    /// Extend the leases of running jobs and record their progress; rows
    /// whose lease is no longer current are reported as fenced.
    fn extend_leases(
        &self,
        p: &ExtendLeases,
    ) -> impl Future<Output = StoreResult<LeaseReport>> + Send;

    /// Move due scheduled and retryable jobs to available.
    fn promote_due(
        &self,
        p: &PromoteDue,
    ) -> impl Future<Output = StoreResult<PromoteReport>> + Send;

    /// Rescue running jobs of dead nodes and expired leases (see [`Rescue`]).
    fn rescue(&self, p: &Rescue) -> impl Future<Output = StoreResult<RescueReport>> + Send;

    /// Set aside available jobs no live node can run (see [`MarkUnhandled`]);
    /// returns how many.
    fn mark_unhandled(&self, p: &MarkUnhandled) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Delete finished jobs past retention; returns how many were deleted.
    fn delete_finished(&self, p: &DeleteFinished) -> impl Future<Output = StoreResult<u64>> + Send;

    /// One job by id.
    fn get_job(&self, id: JobId) -> impl Future<Output = StoreResult<Option<Job>>> + Send;

    /// Jobs matching a filter, newest first.
    fn list_jobs(&self, p: &ListJobs) -> impl Future<Output = StoreResult<Vec<Job>>> + Send;

    /// Cancel a waiting job, or ask the holder of a running job to stop it.
    fn cancel_job(&self, p: &CancelJob) -> impl Future<Output = StoreResult<CancelOutcome>> + Send;

    /// Make a job available now (a failed, cancelled, completed or waiting job).
    fn retry_job(&self, p: &RetryJob) -> impl Future<Output = StoreResult<Job>> + Send;
}
