//! [`JobStore`] for [`AnyStore`]: each call handed to the chosen backend.

use capstan_core::{Job, JobId};
use capstan_store::jobs::{
    CancelJob, CancelOutcome, Claim, DeleteFinished, ExtendLeases, FinishMany, InsertMany,
    Inserted, LeaseReport, ListJobs, MarkUnhandled, PromoteDue, PromoteReport, Rescue,
    RescueReport, RetryJob,
};
use capstan_store::{JobStore, StoreResult};

use super::{AnyStore, forward};

impl JobStore for AnyStore {
    async fn insert_many(&self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        forward!(self, s => s.insert_many(p))
    }
    async fn claim(&self, p: &Claim) -> StoreResult<Vec<Job>> {
        forward!(self, s => s.claim(p))
    }
    async fn finish_many(&self, p: &FinishMany) -> StoreResult<LeaseReport> {
        forward!(self, s => s.finish_many(p))
    }
    async fn extend_leases(&self, p: &ExtendLeases) -> StoreResult<LeaseReport> {
        forward!(self, s => s.extend_leases(p))
    }
    async fn promote_due(&self, p: &PromoteDue) -> StoreResult<PromoteReport> {
        forward!(self, s => s.promote_due(p))
    }
    async fn rescue(&self, p: &Rescue) -> StoreResult<RescueReport> {
        forward!(self, s => s.rescue(p))
    }
    async fn mark_unhandled(&self, p: &MarkUnhandled) -> StoreResult<u64> {
        forward!(self, s => s.mark_unhandled(p))
    }
    async fn delete_finished(&self, p: &DeleteFinished) -> StoreResult<u64> {
        forward!(self, s => s.delete_finished(p))
    }
    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        forward!(self, s => s.get_job(id))
    }
    async fn list_jobs(&self, p: &ListJobs) -> StoreResult<Vec<Job>> {
        forward!(self, s => s.list_jobs(p))
    }
    async fn cancel_job(&self, p: &CancelJob) -> StoreResult<CancelOutcome> {
        forward!(self, s => s.cancel_job(p))
    }
    async fn retry_job(&self, p: &RetryJob) -> StoreResult<Job> {
        forward!(self, s => s.retry_job(p))
    }
}
