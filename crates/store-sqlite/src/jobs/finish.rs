//! Finish: write a batch of attempts' outcomes, and extend leases; both fenced by lease token.

use std::collections::{BTreeSet, HashMap};

use capstan_store::jobs::{
    ExtendLeases, Finish, FinishMany, LeaseReport, Outcome, extension_rows_json, finish_rows_json,
};
use capstan_store::{Notification, StoreResult};
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::SqliteStore;
use crate::row::{db, micros, now_or_system, rfc3339};

/// The `(id, lease)` pairs a fenced batch statement returned.
fn written(rows: &[SqliteRow], operation: &'static str) -> StoreResult<HashMap<i64, String>> {
    rows.iter()
        .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db(operation))
}

pub(crate) async fn finish_many(store: &SqliteStore, p: &FinishMany) -> StoreResult<LeaseReport> {
    if p.finishes.is_empty() {
        return Ok(LeaseReport::default());
    }
    let now = now_or_system(p.now);
    let rows = sqlx::query(include_str!("../../queries/jobs/finish.sql"))
        .bind(finish_rows_json(&p.finishes)?)
        .bind(micros(now))
        .bind(rfc3339(now))
        .fetch_all(&store.inner.writer)
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
    store.announce(Notification::jobs_in(queues.iter().map(String::as_str)));
    if p.finishes
        .iter()
        .any(|f: &Finish| matches!(f.outcome, Outcome::Retry { .. } | Outcome::Snooze { .. }))
    {
        // A scheduler sleeping until the next due job must look again.
        store.announce([Notification::jobs_anywhere()]);
    }
    Ok(report)
}

pub(crate) async fn extend_leases(
    store: &SqliteStore,
    p: &ExtendLeases,
) -> StoreResult<LeaseReport> {
    if p.leases.is_empty() {
        return Ok(LeaseReport::default());
    }
    let now = micros(now_or_system(p.now));
    let rows = sqlx::query(include_str!("../../queries/jobs/extend_leases.sql"))
        .bind(extension_rows_json(&p.leases)?)
        .bind(now)
        .fetch_all(&store.inner.writer)
        .await
        .map_err(db("extend_leases"))?;
    Ok(LeaseReport::from_written(
        p.leases.iter().map(|e| &e.lease),
        &written(&rows, "extend_leases")?,
    ))
}
