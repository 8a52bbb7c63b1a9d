//! [`JobStore`] on SQLite. Every write runs in one `BEGIN IMMEDIATE`
//! transaction on the single writer connection.
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

use crate::SqliteStore;
use crate::row::{self, db};

impl SqliteStore {
    pub(crate) async fn fetch_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        sqlx::query(include_str!("../../queries/jobs/get.sql"))
            .bind(id.0)
            .fetch_optional(&self.inner.reader)
            .await
            .map_err(db("get_job"))?
            .map(|r| row::job(&r))
            .transpose()
    }
}

impl JobStore for SqliteStore {
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
