//! Maintenance: promote due jobs, set aside jobs no live node can run, delete finished jobs past retention.

use capstan_core::JobState;
use capstan_store::StoreResult;
use capstan_store::jobs::{DeleteFinished, MarkUnhandled, PromoteDue, PromoteReport};
use sqlx::Row;

use super::ms;
use crate::PgStore;
use crate::row::db;

pub(crate) async fn promote_due(store: &PgStore, p: &PromoteDue) -> StoreResult<PromoteReport> {
    let rows = sqlx::query(include_str!("../../queries/jobs/promote_due.sql"))
        .bind(p.now)
        .bind(p.limit as i64)
        .fetch_all(&store.inner.pool)
        .await
        .map_err(db("promote_due"))?;
    let mut report = PromoteReport::default();
    for r in &rows {
        report
            .queues
            .push(r.try_get("queue").map_err(db("promote_due"))?);
        report.promoted += r.try_get::<i64, _>("n").map_err(db("promote_due"))? as u64;
    }
    report.next_due = sqlx::query_scalar(include_str!("../../queries/jobs/next_due.sql"))
        .fetch_one(&store.inner.pool)
        .await
        .map_err(db("promote_due"))?;
    Ok(report)
}

pub(crate) async fn mark_unhandled(store: &PgStore, p: &MarkUnhandled) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(include_str!("../../queries/jobs/mark_unhandled.sql"))
        .bind(&p.queue)
        .bind(p.limit as i64)
        .bind(p.now)
        .bind(p.healthy_since)
        .fetch_one(&store.inner.pool)
        .await
        .map_err(db("mark_unhandled"))?;
    Ok(n as u64)
}

pub(crate) async fn delete_finished(store: &PgStore, p: &DeleteFinished) -> StoreResult<u64> {
    let mut deleted = 0;
    for (state, after) in [
        (JobState::Completed, p.completed_after),
        (JobState::Failed, p.failed_after),
        (JobState::Cancelled, p.failed_after),
    ] {
        deleted += sqlx::query(include_str!("../../queries/jobs/delete_finished.sql"))
            .bind(state.as_str())
            .bind(p.now)
            .bind(ms(after))
            .bind(p.limit as i64)
            .execute(&store.inner.pool)
            .await
            .map_err(db("delete_finished"))?
            .rows_affected();
    }
    Ok(deleted)
}
