//! Decoding rows of `capstan.jobs`.

use capstan_core::{AttemptError, Job, JobId, JobState, NodeId};
use capstan_store::{StoreError, StoreResult};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;

fn corrupt(message: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "capstan.jobs",
        message: message.to_string(),
    }
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    column: &str,
) -> StoreResult<T> {
    row.try_get(column)
        .map_err(|e| corrupt(format!("{column}: {e}")))
}

pub(crate) fn job(row: &PgRow) -> StoreResult<Job> {
    let state: String = get(row, "state")?;
    let errors: Vec<AttemptError> = serde_json::from_value(get::<Value>(row, "errors")?)
        .map_err(|e| corrupt(format!("errors: {e}")))?;
    let tags: Vec<String> = serde_json::from_value(get::<Value>(row, "tags")?)
        .map_err(|e| corrupt(format!("tags: {e}")))?;
    Ok(Job {
        id: JobId(get(row, "id")?),
        queue: get(row, "queue")?,
        kind: get(row, "kind")?,
        args: get(row, "args")?,
        priority: get(row, "priority")?,
        state: state.parse::<JobState>().map_err(corrupt)?,
        attempt: get(row, "attempt")?,
        max_attempts: get(row, "max_attempts")?,
        run_at: get(row, "run_at")?,
        timeout_ms: get(row, "timeout_ms")?,
        errors,
        result: get(row, "result")?,
        progress: get(row, "progress")?,
        tags,
        idempotency_key: get(row, "idempotency_key")?,
        dedupe_key: get(row, "dedupe_key")?,
        created_at: get(row, "created_at")?,
        attempted_at: get(row, "attempted_at")?,
        finished_at: get(row, "finished_at")?,
        node_id: get::<Option<String>>(row, "node_id")?.map(NodeId),
        lease_expires_at: get(row, "lease_expires_at")?,
        cancel_requested: get(row, "cancel_requested")?,
    })
}

pub(crate) fn state(row: &PgRow) -> StoreResult<JobState> {
    get::<String>(row, "state")?.parse().map_err(corrupt)
}

pub(crate) fn db(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::database(operation, e)
}
