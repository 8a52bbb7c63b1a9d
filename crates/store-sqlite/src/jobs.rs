//! [`JobStore`] on SQLite. Every write runs in one `BEGIN IMMEDIATE`
//! transaction on the single writer connection.

use std::collections::{BTreeSet, HashMap};

use capstan_core::{Job, JobId, JobState};
use capstan_store::jobs::{
    CancelJob, CancelOutcome, Claim, DeleteFinished, ExtendLeases, Finish, FinishMany, InsertMany,
    Inserted, LeaseReport, ListJobs, MarkUnhandled, Outcome, PromoteDue, PromoteReport, Rescue,
    RescueReport, RetryJob, extension_rows_json, finish_rows_json, sort_in_claim_order,
};
use capstan_store::{JobStore, Notification, StoreError, StoreResult};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::SqliteStore;
use crate::row::{self, LONG_AGO, db, micros, ms, now_or_system, rfc3339};

/// The `(id, lease)` pairs a fenced batch statement returned.
fn written(rows: &[SqliteRow], operation: &'static str) -> StoreResult<HashMap<i64, String>> {
    rows.iter()
        .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db(operation))
}

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
            .map(|k| capstan_store::jobs::encode("claim", k))
            .transpose()?;
        let rows = sqlx::query(include_str!("../queries/claim.sql"))
            .bind(p.node.as_str())
            .bind(now)
            .bind(ms(p.default_timeout))
            .bind(ms(p.lease_grace))
            .bind(&p.queue)
            .bind(kinds)
            .bind(p.limit as i64)
            .bind(capstan_core::LeaseToken::generate().0)
            .fetch_all(&self.inner.writer)
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
            for f in &corrupt {
                tracing::error!(lease = %f.lease, "a claimed job's row could not be read; failing it alone");
            }
            let p = FinishMany {
                finishes: corrupt,
                now: p.now,
            };
            if let Err(e) = self.finish_many(&p).await {
                tracing::error!(error = %e, "could not fail the unreadable rows; they will be rescued when their leases expire");
            }
        }
        sort_in_claim_order(&mut jobs);
        Ok(jobs)
    }

    async fn finish_many(&self, p: &FinishMany) -> StoreResult<LeaseReport> {
        if p.finishes.is_empty() {
            return Ok(LeaseReport::default());
        }
        let now = now_or_system(p.now);
        let rows = sqlx::query(include_str!("../queries/finish.sql"))
            .bind(finish_rows_json(&p.finishes)?)
            .bind(micros(now))
            .bind(rfc3339(now))
            .fetch_all(&self.inner.writer)
            .await
            .map_err(db("finish_many"))?;
        let report = LeaseReport::from_written(
            p.finishes.iter().map(|f| &f.lease),
            &written(&rows, "finish_many")?,
        );
        // A retry or hand-back may have made a job runnable again.
        let mut queues = BTreeSet::new();
        for r in &rows {
            if let Some(q) = r
                .try_get::<Option<String>, _>(2)
                .map_err(db("finish_many"))?
            {
                queues.insert(q);
            }
        }
        self.announce(Notification::jobs_in(queues.iter().map(String::as_str)));
        if p.finishes
            .iter()
            .any(|f: &Finish| matches!(f.outcome, Outcome::Retry { .. } | Outcome::Snooze { .. }))
        {
            // A scheduler sleeping until the next due job must look again.
            self.announce([Notification::jobs_anywhere()]);
        }
        Ok(report)
    }

    async fn extend_leases(&self, p: &ExtendLeases) -> StoreResult<LeaseReport> {
        if p.leases.is_empty() {
            return Ok(LeaseReport::default());
        }
        let now = micros(now_or_system(p.now));
        let rows = sqlx::query(include_str!("../queries/extend_leases.sql"))
            .bind(extension_rows_json(&p.leases)?)
            .bind(now)
            .fetch_all(&self.inner.writer)
            .await
            .map_err(db("extend_leases"))?;
        Ok(LeaseReport::from_written(
            p.leases.iter().map(|e| &e.lease),
            &written(&rows, "extend_leases")?,
        ))
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
        self.announce(Notification::jobs_in(queues.iter().map(String::as_str)));
        Ok(PromoteReport {
            promoted: rows.len() as u64,
            queues: queues.into_iter().collect(),
            next_due: next.map(row::from_micros),
        })
    }

    async fn rescue(&self, p: &Rescue) -> StoreResult<RescueReport> {
        let mut tx = self
            .inner
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("rescue"))?;
        // The time once the write lock is ours: a rescue that waited behind
        // another process's long write must not judge with the time before.
        let now = now_or_system(p.now);
        let mut healthy_since = LONG_AGO;
        if let Some(beat) = &p.rescuer {
            let before = crate::nodes::read_node(&mut tx, &beat.node).await?;
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
            healthy_since = micros(since);
        }
        let rows = sqlx::query(include_str!("../queries/rescue.sql"))
            .bind(micros(now))
            .bind(rfc3339(now))
            .bind(healthy_since)
            .bind(p.limit as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("rescue"))?;
        let removed = sqlx::query(include_str!("../queries/delete_dead_nodes.sql"))
            .bind(micros(now))
            .bind(healthy_since)
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
        let mut report = RescueReport::from_rows(rows, removed);
        report.healthy_since = p.rescuer.as_ref().map(|_| row::from_micros(healthy_since));
        self.announce(Notification::jobs_in(
            report.queues.iter().map(String::as_str),
        ));
        Ok(report)
    }

    async fn mark_unhandled(&self, p: &MarkUnhandled) -> StoreResult<u64> {
        Ok(sqlx::query(include_str!("../queries/mark_unhandled.sql"))
            .bind(&p.queue)
            .bind(p.limit as i64)
            .bind(micros(now_or_system(p.now)))
            .bind(micros(p.healthy_since))
            .execute(&self.inner.writer)
            .await
            .map_err(db("mark_unhandled"))?
            .rows_affected())
    }

    async fn delete_finished(&self, p: &DeleteFinished) -> StoreResult<u64> {
        let now = now_or_system(p.now);
        let before = |d: std::time::Duration| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .map_or(i64::MIN, micros)
        };
        let mut deleted = 0;
        for (state, after) in [
            (JobState::Completed, p.completed_after),
            (JobState::Failed, p.failed_after),
            (JobState::Cancelled, p.failed_after),
        ] {
            deleted += sqlx::query(include_str!("../queries/delete_finished.sql"))
                .bind(state.as_str())
                .bind(before(after))
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
            self.announce([Notification::cancel(p.id)]);
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
                self.announce(Notification::jobs_in([job.queue.as_str()]));
                Ok(job)
            }
            None => {
                let state = self.fetch_job(p.id).await?.map(|j| j.state);
                Err(StoreError::refused(p.id, state, "retry"))
            }
        }
    }
}
