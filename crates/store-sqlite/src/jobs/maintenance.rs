//! Maintenance: promote due jobs, set aside jobs no live node can run, delete finished jobs past retention.

use std::collections::BTreeSet;

use capstan_core::JobState;
use capstan_store::jobs::{DeleteFinished, MarkUnhandled, PromoteDue, PromoteReport};
use capstan_store::{Notification, StoreResult};
use sqlx::Row as _;

use crate::SqliteStore;
use crate::row::{self, db, micros, ms, now_or_system};

pub(crate) async fn promote_due(store: &SqliteStore, p: &PromoteDue) -> StoreResult<PromoteReport> {
    let now = micros(now_or_system(p.now));
    let rows = sqlx::query(include_str!("../../queries/jobs/promote_due.sql"))
        .bind(now)
        .bind(p.limit as i64)
        .fetch_all(&store.inner.writer)
        .await
        .map_err(db("promote_due"))?;
    let queues: BTreeSet<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(db("promote_due"))?;
    let next: Option<i64> = sqlx::query_scalar(include_str!("../../queries/jobs/next_due.sql"))
        .fetch_one(&store.inner.reader)
        .await
        .map_err(db("promote_due"))?;
    store.announce(Notification::jobs_in(queues.iter().map(String::as_str)));
    Ok(PromoteReport {
        promoted: rows.len() as u64,
        queues: queues.into_iter().collect(),
        next_due: next.map(row::from_micros),
    })
}

pub(crate) async fn mark_unhandled(store: &SqliteStore, p: &MarkUnhandled) -> StoreResult<u64> {
    Ok(
        sqlx::query(include_str!("../../queries/jobs/mark_unhandled.sql"))
            .bind(&p.queue)
            .bind(p.limit as i64)
            .bind(micros(now_or_system(p.now)))
            .bind(micros(p.healthy_since))
            .execute(&store.inner.writer)
            .await
            .map_err(db("mark_unhandled"))?
            .rows_affected(),
    )
}

pub(crate) async fn delete_finished(store: &SqliteStore, p: &DeleteFinished) -> StoreResult<u64> {
    let now = now_or_system(p.now);
    let mut deleted = 0;
    for (state, after) in [
        (JobState::Completed, p.completed_after),
        (JobState::Failed, p.failed_after),
        (JobState::Cancelled, p.failed_after),
    ] {
        deleted += sqlx::query(include_str!("../../queries/jobs/delete_finished.sql"))
            .bind(state.as_str())
            .bind(micros(now))
            .bind(ms(after))
            .bind(p.limit as i64)
            .execute(&store.inner.writer)
            .await
            .map_err(db("delete_finished"))?
            .rows_affected();
    }
    Ok(deleted)
}
