//! [`JobStore`] on PostgreSQL.
//!
//! A trait `impl` cannot be split across files, so this one is a table:
//! each call goes to its area's module — the same areas as the seam's
//! `capstan_store::jobs`, the `queries/jobs/` files and the conformance
//! cases (`enqueue`, `claim`, `finish`, `rescue`, `maintenance`, `admin`).

mod admin;
mod claim;
pub(crate) mod enqueue;
mod finish;
mod maintenance;
mod rescue;

use capstan_core::{Job, JobId};
use capstan_store::jobs::{
    CancelJob, CancelOutcome, Claim, DeleteFinished, ExtendLeases, FinishMany, InsertMany,
    Inserted, LeaseReport, ListJobs, MarkUnhandled, PromoteDue, PromoteReport, Rescue,
    RescueReport, RetryJob,
};
use capstan_store::{JobStore, StoreResult};

use crate::PgStore;

pub(crate) use crate::row::ms;

impl JobStore for PgStore {
    async fn insert_many(&self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        self.insert(p).await
    }

    async fn claim(&self, p: &Claim) -> StoreResult<Vec<Job>> {
        claim::claim(self, p).await
    }

    async fn finish_many(&self, p: &FinishMany) -> StoreResult<LeaseReport> {
        finish::finish_many(self, p).await
    }

    async fn extend_leases(&self, p: &ExtendLeases) -> StoreResult<LeaseReport> {
        finish::extend_leases(self, p).await
    }

    async fn promote_due(&self, p: &PromoteDue) -> StoreResult<PromoteReport> {
        maintenance::promote_due(self, p).await
    }

    async fn rescue(&self, p: &Rescue) -> StoreResult<RescueReport> {
        rescue::rescue(self, p).await
    }

    async fn mark_unhandled(&self, p: &MarkUnhandled) -> StoreResult<u64> {
        maintenance::mark_unhandled(self, p).await
    }

    async fn delete_finished(&self, p: &DeleteFinished) -> StoreResult<u64> {
        maintenance::delete_finished(self, p).await
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        admin::get_job(self, id).await
    }

    async fn list_jobs(&self, p: &ListJobs) -> StoreResult<Vec<Job>> {
        admin::list_jobs(self, p).await
    }

    async fn cancel_job(&self, p: &CancelJob) -> StoreResult<CancelOutcome> {
        admin::cancel_job(self, p).await
    }

    async fn retry_job(&self, p: &RetryJob) -> StoreResult<Job> {
        admin::retry_job(self, p).await
    }
}

impl PgStore {
    /// Fail claimed rows that could not be decoded, each on its own lease;
    /// a failure here is logged (the rows' leases expire and they are
    /// rescued, and failed again, until their attempts run out).
    pub(crate) async fn finish_corrupt(
        &self,
        finishes: Vec<capstan_store::jobs::Finish>,
        now: Option<capstan_core::Timestamp>,
    ) {
        for f in &finishes {
            tracing::error!(lease = %f.lease, "a claimed job's row could not be read; failing it alone");
        }
        let p = FinishMany { finishes, now };
        if let Err(e) = self.finish_many(&p).await {
            tracing::error!(error = %e, "could not fail the unreadable rows; they will be rescued when their leases expire");
        }
    }
}
