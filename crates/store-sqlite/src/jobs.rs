//! [`JobStore`] on SQLite. Every write runs in one `BEGIN IMMEDIATE`
//! transaction on the single writer connection.

use std::collections::BTreeSet;

use capstan_core::{Job, JobId, JobState};
use capstan_store::{
    CancelJob, CancelOutcome, Claim, DeleteFinished, ExtendLease, FinishMany, FinishReport,
    InsertMany, Inserted, JobStore, ListJobs, PromoteDue, PromoteReport, Rescue, RescueReport,
    RetryJob, StoreError, StoreResult, Wakeup, finish_rows_json, sort_in_claim_order,
};
use sqlx::Row as _;

use crate::SqliteStore;
use crate::row::{self, db, micros, ms, now_or_system, rfc3339};

impl SqliteStore {
    async fn fetch_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        sqlx::query(include_str!("../queries/get_job.sql"))
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
        if p.limit == 0 {
            return Ok(Vec::new());
        }
        let now = micros(now_or_system(p.now));
        let kinds = p
            .kinds
            .as_ref()
            .map(|k| serde_json::to_string(k).unwrap_or_else(|_| "[]".into()));
        let rows = sqlx::query(include_str!("../queries/claim.sql"))
            .bind(p.node.as_str())
            .bind(now)
            .bind(ms(p.default_timeout))
            .bind(ms(p.lease_grace))
            .bind(&p.queue)
            .bind(kinds)
            .bind(p.limit as i64)
            .fetch_all(&self.inner.writer)
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
        let now = now_or_system(p.now);
        let rows = sqlx::query(include_str!("../queries/finish.sql"))
            .bind(finish_rows_json(&p.finishes))
            .bind(micros(now))
            .bind(rfc3339(now))
            .bind(p.node.as_str())
            .fetch_all(&self.inner.writer)
            .await
            .map_err(db("finish_many"))?;
        let done: BTreeSet<i64> = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()
            .map_err(db("finish_many"))?;
        let report = FinishReport::from_written(&p.finishes, &done);
        // A retry or hand-back may have made a job runnable again.
        if p.finishes
            .iter()
            .any(|f| !matches!(f.outcome, capstan_store::Outcome::Complete { .. }))
        {
            self.hub().send(Wakeup::All);
        }
        Ok(report)
    }

    async fn extend_lease(&self, p: &ExtendLease) -> StoreResult<()> {
        let now = micros(now_or_system(p.now));
        let progress = p
            .progress
            .as_ref()
            .map(|v| serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
        let done = sqlx::query(include_str!("../queries/extend_lease.sql"))
            .bind(p.id.0)
            .bind(p.attempt as i64)
            .bind(p.node.as_str())
            .bind(now)
            .bind(ms(p.lease))
            .bind(progress)
            .execute(&self.inner.writer)
            .await
            .map_err(db("extend_lease"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Fenced { job_id: p.id });
        }
        Ok(())
    }

    async fn promote_due(&self, p: &PromoteDue) -> StoreResult<PromoteReport> {
        let now = micros(now_or_system(p.now));
        let rows = sqlx::query(include_str!("../queries/promote_due.sql"))
            .bind(now)
            .bind(p.limit as i64)
            .fetch_all(&self.inner.writer)
            .await
            .map_err(db("promote_due"))?;
        let queues: BTreeSet<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(db("promote_due"))?;
        let next: Option<i64> = sqlx::query_scalar(include_str!("../queries/next_due.sql"))
            .fetch_one(&self.inner.reader)
            .await
            .map_err(db("promote_due"))?;
        for q in &queues {
            self.hub().send(Wakeup::Queue(q.clone()));
        }
        Ok(PromoteReport {
            promoted: rows.len() as u64,
            queues: queues.into_iter().collect(),
            next_due: next.map(row::from_micros),
        })
    }

    async fn rescue(&self, p: &Rescue) -> StoreResult<RescueReport> {
        let now = now_or_system(p.now);
        let mut tx = self
            .inner
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("rescue"))?;
        let rows = sqlx::query(include_str!("../queries/rescue.sql"))
            .bind(micros(now))
            .bind(rfc3339(now))
            .bind(ms(p.node_timeout))
            .bind(p.limit as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("rescue"))?;
        let removed = sqlx::query(include_str!("../queries/delete_dead_nodes.sql"))
            .bind(micros(now))
            .bind(ms(p.node_timeout))
            .execute(&mut *tx)
            .await
            .map_err(db("rescue"))?
            .rows_affected();
        tx.commit().await.map_err(db("rescue"))?;
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
        for q in &report.queues {
            self.hub().send(Wakeup::Queue(q.clone()));
        }
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
                .bind(micros(before))
                .bind(p.limit as i64)
                .execute(&self.inner.writer)
                .await
                .map_err(db("delete_finished"))?
                .rows_affected();
        }
        Ok(deleted)
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.fetch_job(id).await
    }

    async fn list_jobs(&self, p: &ListJobs) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(include_str!("../queries/list_jobs.sql"))
            .bind(p.queue.as_deref())
            .bind(p.state.map(|s| s.as_str()))
            .bind(p.kind.as_deref())
            .bind(p.limit as i64)
            .fetch_all(&self.inner.reader)
            .await
            .map_err(db("list_jobs"))?;
        rows.iter().map(row::job).collect()
    }

    async fn cancel_job(&self, p: &CancelJob) -> StoreResult<CancelOutcome> {
        let now = now_or_system(p.now);
        let mut tx = self
            .inner
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("cancel_job"))?;
        let waiting = sqlx::query(include_str!("../queries/cancel_waiting.sql"))
            .bind(p.id.0)
            .bind(micros(now))
            .bind(rfc3339(now))
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
        if let CancelOutcome::Requested(_) = outcome {
            self.hub().send(Wakeup::Cancel(p.id));
        }
        Ok(outcome)
    }

    async fn retry_job(&self, p: &RetryJob) -> StoreResult<Job> {
        let now = micros(now_or_system(p.now));
        let updated = sqlx::query(include_str!("../queries/retry_job.sql"))
            .bind(p.id.0)
            .bind(now)
            .fetch_optional(&self.inner.writer)
            .await
            .map_err(db("retry_job"))?;
        match updated {
            Some(r) => {
                let job = row::job(&r)?;
                self.hub().send(Wakeup::Queue(job.queue.clone()));
                Ok(job)
            }
            None => {
                let state = self.fetch_job(p.id).await?.map(|j| j.state);
                Err(StoreError::refused(p.id, state, "retry"))
            }
        }
    }
}
