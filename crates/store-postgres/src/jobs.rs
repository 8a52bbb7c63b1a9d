//! [`JobStore`] on PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use capstan_core::{Job, JobId, JobState};
use capstan_store::{
    CancelJob, CancelOutcome, Claim, DeleteFinished, ExtendLease, FinishMany, FinishReport,
    InsertMany, Inserted, JobStore, ListJobs, PromoteDue, PromoteReport, Rescue, RescueReport,
    RetryJob, StoreError, StoreResult, finish_rows_json, sort_in_claim_order,
};
use sqlx::Row;

use crate::PgStore;
use crate::row::{self, db};

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl JobStore for PgStore {
    async fn insert_many(&self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        let mut conn = self.inner.pool.acquire().await.map_err(db("insert_many"))?;
        Self::insert_many_in(&mut conn, p).await
    }

    async fn claim(&self, p: &Claim) -> StoreResult<Vec<Job>> {
        if p.limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(include_str!("../queries/claim.sql"))
            .bind(&p.queue)
            .bind(p.kinds.as_deref())
            .bind(p.limit.min(i32::MAX as u32) as i32)
            .bind(p.node.as_str())
            .bind(p.now)
            .bind(ms(p.default_timeout))
            .bind(ms(p.lease_grace))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("claim"))?;
        let mut jobs = rows.iter().map(row::job).collect::<StoreResult<Vec<_>>>()?;
        sort_in_claim_order(&mut jobs);
        Ok(jobs)
    }

    async fn finish_many(&self, p: &FinishMany) -> StoreResult<FinishReport> {
        if p.finishes.is_empty() {
            return Ok(FinishReport::default());
        }
        let rows = sqlx::query(include_str!("../queries/finish.sql"))
            .bind(finish_rows_json(&p.finishes))
            .bind(p.now)
            .bind(p.node.as_str())
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("finish_many"))?;
        let done: BTreeSet<i64> = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()
            .map_err(db("finish_many"))?;
        Ok(FinishReport::from_written(&p.finishes, &done))
    }

    async fn extend_lease(&self, p: &ExtendLease) -> StoreResult<()> {
        let done = sqlx::query(include_str!("../queries/extend_lease.sql"))
            .bind(p.id.0)
            .bind(p.attempt)
            .bind(p.node.as_str())
            .bind(p.now)
            .bind(ms(p.lease))
            .bind(p.progress.as_ref())
            .execute(&self.inner.pool)
            .await
            .map_err(db("extend_lease"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Fenced { job_id: p.id });
        }
        Ok(())
    }

    async fn promote_due(&self, p: &PromoteDue) -> StoreResult<PromoteReport> {
        let rows = sqlx::query(include_str!("../queries/promote_due.sql"))
            .bind(p.now)
            .bind(p.limit as i64)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("promote_due"))?;
        let mut report = PromoteReport::default();
        for r in &rows {
            report
                .queues
                .push(r.try_get("queue").map_err(db("promote_due"))?);
            report.promoted += r.try_get::<i64, _>("n").map_err(db("promote_due"))? as u64;
        }
        report.next_due = sqlx::query_scalar(include_str!("../queries/next_due.sql"))
            .fetch_one(&self.inner.pool)
            .await
            .map_err(db("promote_due"))?;
        Ok(report)
    }

    async fn rescue(&self, p: &Rescue) -> StoreResult<RescueReport> {
        let rows = sqlx::query(include_str!("../queries/rescue.sql"))
            .bind(p.now)
            .bind(ms(p.node_timeout))
            .bind(p.limit as i64)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("rescue"))?;
        let removed = sqlx::query(include_str!("../queries/delete_dead_nodes.sql"))
            .bind(p.now)
            .bind(ms(p.node_timeout))
            .execute(&self.inner.pool)
            .await
            .map_err(db("rescue"))?
            .rows_affected();
        let rows = rows
            .iter()
            .map(|r| {
                Ok((
                    JobId(r.try_get("id").map_err(db("rescue"))?),
                    row::state(r)?,
                    r.try_get::<String, _>("queue").map_err(db("rescue"))?,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let report = RescueReport::from_rows(rows, removed);
        Ok(report)
    }

    async fn delete_finished(&self, p: &DeleteFinished) -> StoreResult<u64> {
        let mut deleted = 0;
        for (state, before) in [
            (JobState::Completed, p.completed_before),
            (JobState::Failed, p.failed_before),
            (JobState::Cancelled, p.failed_before),
        ] {
            deleted += sqlx::query(include_str!("../queries/delete_finished.sql"))
                .bind(state.as_str())
                .bind(before)
                .bind(p.limit as i64)
                .execute(&self.inner.pool)
                .await
                .map_err(db("delete_finished"))?
                .rows_affected();
        }
        Ok(deleted)
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        sqlx::query(include_str!("../queries/get_job.sql"))
            .bind(id.0)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(db("get_job"))?
            .map(|r| row::job(&r))
            .transpose()
    }

    async fn list_jobs(&self, p: &ListJobs) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(include_str!("../queries/list_jobs.sql"))
            .bind(p.queue.as_deref())
            .bind(p.state.map(|s| s.as_str()))
            .bind(p.kind.as_deref())
            .bind(p.limit as i64)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("list_jobs"))?;
        rows.iter().map(row::job).collect()
    }

    async fn cancel_job(&self, p: &CancelJob) -> StoreResult<CancelOutcome> {
        let mut tx = self.inner.pool.begin().await.map_err(db("cancel_job"))?;
        let waiting = sqlx::query(include_str!("../queries/cancel_waiting.sql"))
            .bind(p.id.0)
            .bind(p.now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("cancel_job"))?;
        let outcome = if let Some(r) = waiting {
            CancelOutcome::Cancelled(row::job(&r)?)
        } else if let Some(r) = sqlx::query(include_str!("../queries/cancel_running.sql"))
            .bind(p.id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("cancel_job"))?
        {
            CancelOutcome::Requested(row::job(&r)?)
        } else {
            let found = sqlx::query(include_str!("../queries/get_job.sql"))
                .bind(p.id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("cancel_job"))?;
            let state = found.map(|r| row::state(&r)).transpose()?;
            return Err(StoreError::refused(p.id, state, "cancel"));
        };
        tx.commit().await.map_err(db("cancel_job"))?;
        Ok(outcome)
    }

    async fn retry_job(&self, p: &RetryJob) -> StoreResult<Job> {
        let updated = sqlx::query(include_str!("../queries/retry_job.sql"))
            .bind(p.id.0)
            .bind(p.now)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(db("retry_job"))?;
        match updated {
            Some(r) => row::job(&r),
            None => {
                let state = self.get_job(p.id).await?.map(|j| j.state);
                Err(StoreError::refused(p.id, state, "retry"))
            }
        }
    }
}
