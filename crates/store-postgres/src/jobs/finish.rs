//! Finish: write a batch of attempts' outcomes, and extend leases; both fenced by lease token.

use capstan_store::StoreResult;
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::collections::HashMap;

use capstan_store::jobs::{
    ExtendLeases, FinishMany, LeaseReport, extension_rows_json, finish_rows_json,
};

use crate::PgStore;
use crate::row::db;

/// The `(id, lease)` pairs a fenced batch statement returned.
fn written(rows: &[PgRow], operation: &'static str) -> StoreResult<HashMap<i64, String>> {
    rows.iter()
        .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db(operation))
}

pub(crate) async fn finish_many(store: &PgStore, p: &FinishMany) -> StoreResult<LeaseReport> {
    if p.finishes.is_empty() {
        return Ok(LeaseReport::default());
    }
    let rows = sqlx::query(include_str!("../../queries/jobs/finish.sql"))
        .bind(finish_rows_json(&p.finishes)?)
        .bind(p.now)
        .fetch_all(&store.inner.control)
        .await
        .map_err(db("finish_many"))?;
    let written = written(&rows, "finish_many")?;
    Ok(LeaseReport::from_written(
        p.finishes.iter().map(|f| &f.lease),
        &written,
    ))
}

pub(crate) async fn extend_leases(store: &PgStore, p: &ExtendLeases) -> StoreResult<LeaseReport> {
    if p.leases.is_empty() {
        return Ok(LeaseReport::default());
    }
    let rows = sqlx::query(include_str!("../../queries/jobs/extend_leases.sql"))
        .bind(extension_rows_json(&p.leases)?)
        .bind(p.now)
        .fetch_all(&store.inner.control)
        .await
        .map_err(db("extend_leases"))?;
    let written = written(&rows, "extend_leases")?;
    Ok(LeaseReport::from_written(
        p.leases.iter().map(|e| &e.lease),
        &written,
    ))
}
