//! Admin: read, list, cancel and retry jobs.

use capstan_core::{Job, JobId};
use capstan_store::jobs::{CancelJob, CancelOutcome, ListJobs, RetryJob};
use capstan_store::{Notification, StoreError, StoreResult};

use crate::SqliteStore;
use crate::row::{self, db, micros, now_or_system, rfc3339};

pub(crate) async fn get_job(store: &SqliteStore, id: JobId) -> StoreResult<Option<Job>> {
    store.fetch_job(id).await
}

pub(crate) async fn list_jobs(store: &SqliteStore, p: &ListJobs) -> StoreResult<Vec<Job>> {
    let rows = sqlx::query(include_str!("../../queries/jobs/list.sql"))
        .bind(p.queue.as_deref())
        .bind(p.state.map(|s| s.as_str()))
        .bind(p.kind.as_deref())
        .bind(p.tag.as_deref())
        .bind(p.before.map(|id| id.0))
        .bind(
            p.ids
                .as_ref()
                .map(|ids| sqlx::types::Json(ids.iter().map(|i| i.0).collect::<Vec<i64>>())),
        )
        .bind(p.limit as i64)
        .fetch_all(&store.inner.reader)
        .await
        .map_err(db("list_jobs"))?;
    rows.iter().map(row::job).collect()
}

pub(crate) async fn cancel_job(store: &SqliteStore, p: &CancelJob) -> StoreResult<CancelOutcome> {
    let now = now_or_system(p.now);
    let mut tx = store
        .inner
        .writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db("cancel_job"))?;
    let waiting = sqlx::query(include_str!("../../queries/jobs/cancel_waiting.sql"))
        .bind(p.id.0)
        .bind(micros(now))
        .bind(rfc3339(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("cancel_job"))?;
    let outcome = if let Some(r) = waiting {
        CancelOutcome::Cancelled(row::job(&r)?)
    } else if let Some(r) = sqlx::query(include_str!("../../queries/jobs/cancel_running.sql"))
        .bind(p.id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("cancel_job"))?
    {
        CancelOutcome::Requested(row::job(&r)?)
    } else {
        let found = sqlx::query(include_str!("../../queries/jobs/get.sql"))
            .bind(p.id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("cancel_job"))?;
        let state = found.map(|r| row::state(&r)).transpose()?;
        return Err(StoreError::refused(p.id, state, "cancel"));
    };
    tx.commit().await.map_err(db("cancel_job"))?;
    if let CancelOutcome::Requested(_) = outcome {
        store.announce([Notification::cancel(p.id)]);
    }
    Ok(outcome)
}

pub(crate) async fn retry_job(store: &SqliteStore, p: &RetryJob) -> StoreResult<Job> {
    let now = micros(now_or_system(p.now));
    let updated = sqlx::query(include_str!("../../queries/jobs/retry.sql"))
        .bind(p.id.0)
        .bind(now)
        .fetch_optional(&store.inner.writer)
        .await
        .map_err(db("retry_job"))?;
    match updated {
        Some(r) => {
            let job = row::job(&r)?;
            store.announce(Notification::jobs_in([job.queue.as_str()]));
            Ok(job)
        }
        None => {
            let state = store.fetch_job(p.id).await?.map(|j| j.state);
            Err(StoreError::refused(p.id, state, "retry"))
        }
    }
}
