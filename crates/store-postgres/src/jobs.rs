//! [`JobStore`] on PostgreSQL.

use std::collections::HashMap;
use std::time::Duration;

use capstan_core::{Job, JobId, JobState};
use capstan_store::jobs::{
    CancelJob, CancelOutcome, Claim, DeleteFinished, ExtendLeases, FinishMany, InsertMany,
    Inserted, LeaseReport, ListJobs, MarkUnhandled, PromoteDue, PromoteReport, Rescue,
    RescueReport, RetryJob, extension_rows_json, finish_rows_json, sort_in_claim_order,
};
use capstan_store::{JobStore, StoreError, StoreResult};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::PgStore;
use crate::row::{self, db};

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// The `(id, lease)` pairs a fenced batch statement returned.
fn written(rows: &[PgRow], operation: &'static str) -> StoreResult<HashMap<i64, String>> {
    rows.iter()
        .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db(operation))
}

impl JobStore for PgStore {
    async fn insert_many(&self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        self.insert(p).await
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
            .bind(capstan_core::LeaseToken::generate().0)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("claim"))?;
        let mut jobs = Vec::with_capacity(rows.len());
        let mut corrupt = Vec::new();
        for r in &rows {
            match row::job(r) {
                Ok(job) => jobs.push(job),
                Err(e) => corrupt.push(capstan_store::jobs::fail_corrupt(row::lease(r)?, &e)),
            }
        }
        if !corrupt.is_empty() {
            self.finish_corrupt(corrupt, p.now).await;
        }
        sort_in_claim_order(&mut jobs);
        Ok(jobs)
    }

    async fn finish_many(&self, p: &FinishMany) -> StoreResult<LeaseReport> {
        if p.finishes.is_empty() {
            return Ok(LeaseReport::default());
        }
        let rows = sqlx::query(include_str!("../queries/finish.sql"))
            .bind(finish_rows_json(&p.finishes)?)
            .bind(p.now)
            .fetch_all(&self.inner.control)
            .await
            .map_err(db("finish_many"))?;
        let written = written(&rows, "finish_many")?;
        Ok(LeaseReport::from_written(
            p.finishes.iter().map(|f| &f.lease),
            &written,
        ))
    }

    async fn extend_leases(&self, p: &ExtendLeases) -> StoreResult<LeaseReport> {
        if p.leases.is_empty() {
            return Ok(LeaseReport::default());
        }
        let rows = sqlx::query(include_str!("../queries/extend_leases.sql"))
            .bind(extension_rows_json(&p.leases)?)
            .bind(p.now)
            .fetch_all(&self.inner.control)
            .await
            .map_err(db("extend_leases"))?;
        let written = written(&rows, "extend_leases")?;
        Ok(LeaseReport::from_written(
            p.leases.iter().map(|e| &e.lease),
            &written,
        ))
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
        let mut tx = self.inner.beat.begin().await.map_err(db("rescue"))?;
        let mut healthy_since = None;
        if let Some(beat) = &p.rescuer {
            let (now, before) = crate::nodes::read_node(&mut tx, &beat.node, beat.now).await?;
            if before
                .as_ref()
                .is_some_and(|b| b.incarnation != beat.incarnation)
            {
                // Another process holds this node id now: judge nothing.
                return Ok(RescueReport {
                    stalled: true,
                    ..RescueReport::default()
                });
            }
            let since = beat.healthy_since(before.as_ref(), now);
            crate::nodes::write_node(&mut tx, beat, before.as_ref(), now, since).await?;
            if before.as_ref().is_none_or(|b| b.healthy_since != since) {
                // This beat started our health over: our own writes were
                // stuck (or we were thought dead), so were everyone's.
                // Judge nobody until they had time to beat.
                tx.commit().await.map_err(db("rescue"))?;
                return Ok(RescueReport {
                    stalled: true,
                    healthy_since: Some(since),
                    ..RescueReport::default()
                });
            }
            healthy_since = Some(since);
        }
        let r = sqlx::query(include_str!("../queries/rescue.sql"))
            .bind(p.now)
            .bind(healthy_since)
            .bind(p.limit as i64)
            .fetch_one(&mut *tx)
            .await
            .map_err(db("rescue"))?;
        tx.commit().await.map_err(db("rescue"))?;
        let rescued: Value = r.try_get("rescued").map_err(db("rescue"))?;
        let removed: i64 = r.try_get("removed").map_err(db("rescue"))?;
        let rows: Vec<(i64, String, String)> =
            serde_json::from_value(rescued).map_err(|e| StoreError::Corrupt {
                table: "capstan.jobs",
                message: format!("rescue report: {e}"),
            })?;
        let rows = rows
            .into_iter()
            .map(|(id, state, queue)| {
                let state: JobState = state.parse().map_err(|e| StoreError::Corrupt {
                    table: "capstan.jobs",
                    message: format!("state: {e}"),
                })?;
                Ok((JobId(id), state, queue))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let mut report = RescueReport::from_rows(rows, removed as u64);
        report.healthy_since = healthy_since;
        Ok(report)
    }

    async fn mark_unhandled(&self, p: &MarkUnhandled) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(include_str!("../queries/mark_unhandled.sql"))
            .bind(&p.queue)
            .bind(p.limit as i64)
            .bind(p.now)
            .bind(p.healthy_since)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(db("mark_unhandled"))?;
        Ok(n as u64)
    }

    async fn delete_finished(&self, p: &DeleteFinished) -> StoreResult<u64> {
        let mut deleted = 0;
        for (state, after) in [
            (JobState::Completed, p.completed_after),
            (JobState::Failed, p.failed_after),
            (JobState::Cancelled, p.failed_after),
        ] {
            deleted += sqlx::query(include_str!("../queries/delete_finished.sql"))
                .bind(state.as_str())
                .bind(p.now)
                .bind(ms(after))
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

impl PgStore {
    /// Fail claimed rows that could not be decoded, each on its own lease;
    /// a failure here is logged (the rows' leases expire and they are
    /// rescued, and failed again, until their attempts run out).
    async fn finish_corrupt(
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
