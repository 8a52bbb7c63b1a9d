//! Decoding rows of `capstan.jobs`.

use capstan_core::{AttemptError, Job, JobId, JobState, Lease, LeaseToken, NodeId};
use capstan_store::nodes::NodeInfo;
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

/// A duration as whole milliseconds, for a `bigint` parameter (saturating).
pub(crate) fn ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
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
        lease_token: get::<Option<String>>(row, "lease_token")?.map(LeaseToken),
        lease_expires_at: get(row, "lease_expires_at")?,
        cancel_requested: get(row, "cancel_requested")?,
        unhandled: get(row, "unhandled")?,
    })
}

/// The lease of a claimed row, read without the rest of it (so that a row
/// whose other columns cannot be decoded can still be failed, fenced).
pub(crate) fn lease(row: &PgRow) -> StoreResult<Lease> {
    Ok(Lease {
        job_id: JobId(get(row, "id")?),
        token: LeaseToken(get(row, "lease_token")?),
    })
}

pub(crate) fn node(row: &PgRow) -> StoreResult<NodeInfo> {
    let corrupt_node = |e: String| StoreError::Corrupt {
        table: "capstan.nodes",
        message: e,
    };
    let list = |column: &str| -> StoreResult<Vec<String>> {
        serde_json::from_value(get::<Value>(row, column)?)
            .map_err(|e| corrupt_node(format!("{column}: {e}")))
    };
    Ok(NodeInfo {
        id: NodeId(get(row, "id")?),
        incarnation: get(row, "incarnation")?,
        queues: list("queues")?,
        kinds: list("kinds")?,
        interval: std::time::Duration::from_millis(
            u64::try_from(get::<i64>(row, "heartbeat_ms")?).unwrap_or_default(),
        ),
        beats: u64::try_from(get::<i64>(row, "beats")?).unwrap_or_default(),
        started_at: get(row, "started_at")?,
        heartbeat_at: get(row, "heartbeat_at")?,
        expires_at: get(row, "expires_at")?,
        healthy_since: get(row, "healthy_since")?,
    })
}

pub(crate) fn state(row: &PgRow) -> StoreResult<JobState> {
    get::<String>(row, "state")?.parse().map_err(corrupt)
}

/// Wrap a driver error raised by `operation`: `Unavailable` when it may go
/// away by itself (no connection, server shutting down, out of resources,
/// a serialization failure or deadlock), `Database` when the server refused
/// the statement itself.
/// A statement the server refused for its data (class 22, data exception:
/// a value out of range, an untranslatable character; class 54, a program
/// limit such as the size of a jsonb value) is `Refused`.
pub(crate) fn db(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        if transient(&e) {
            StoreError::Unavailable {
                operation,
                source: Box::new(e),
            }
        } else if refused(&e) {
            StoreError::Refused {
                operation,
                source: Box::new(e),
            }
        } else {
            StoreError::database(operation, e)
        }
    }
}

fn refused(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("54")),
        _ => false,
    }
}

fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            // 08: connection exception; 53: insufficient resources; 57P:
            // shutdown, crash, cannot connect now; 40001 serialization
            // failure, 40P01 deadlock; 55P03 lock not available.
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || c == "40001"
                || c == "40P01"
                || c == "55P03"
        }),
        _ => false,
    }
}
