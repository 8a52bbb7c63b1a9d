//! Decoding rows: integer microseconds to timestamps, JSON text to values.

use capstan_core::{AttemptError, Job, JobId, JobState, Lease, LeaseToken, NodeId, Timestamp};
use capstan_store::nodes::NodeInfo;
use capstan_store::{StoreError, StoreResult};
use chrono::DateTime;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

/// A duration in whole milliseconds, as stored.
pub(crate) fn ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

pub(crate) fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> Timestamp {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// The time of an operation: the pinned test time, or now.
pub(crate) fn now_or_system(now: Option<Timestamp>) -> Timestamp {
    now.unwrap_or_else(chrono::Utc::now)
}

/// RFC 3339 text, as stored inside the errors JSON.
pub(crate) fn rfc3339(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn corrupt(message: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "capstan_jobs",
        message: message.to_string(),
    }
}

fn json<T: DeserializeOwned>(text: &str, column: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{column}: {e}")))
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    column: &str,
) -> StoreResult<T> {
    row.try_get(column)
        .map_err(|e| corrupt(format!("{column}: {e}")))
}

pub(crate) fn job(row: &SqliteRow) -> StoreResult<Job> {
    let state: String = get(row, "state")?;
    let errors: Vec<AttemptError> = json(&get::<String>(row, "errors")?, "errors")?;
    let opt_json = |column: &str| -> StoreResult<Option<serde_json::Value>> {
        get::<Option<String>>(row, column)?
            .map(|t| json(&t, column))
            .transpose()
    };
    Ok(Job {
        id: JobId(get(row, "id")?),
        queue: get(row, "queue")?,
        kind: get(row, "kind")?,
        args: json(&get::<String>(row, "args")?, "args")?,
        priority: get::<i64>(row, "priority")? as i16,
        state: state.parse::<JobState>().map_err(corrupt)?,
        attempt: get::<i64>(row, "attempt")? as i32,
        max_attempts: get::<i64>(row, "max_attempts")? as i32,
        run_at: from_micros(get(row, "run_at")?),
        timeout_ms: get(row, "timeout_ms")?,
        errors,
        result: opt_json("result")?,
        progress: opt_json("progress")?,
        tags: json(&get::<String>(row, "tags")?, "tags")?,
        idempotency_key: get(row, "idempotency_key")?,
        dedupe_key: get(row, "dedupe_key")?,
        created_at: from_micros(get(row, "created_at")?),
        attempted_at: get::<Option<i64>>(row, "attempted_at")?.map(from_micros),
        finished_at: get::<Option<i64>>(row, "finished_at")?.map(from_micros),
        node_id: get::<Option<String>>(row, "node_id")?.map(NodeId),
        lease_token: get::<Option<String>>(row, "lease_token")?.map(LeaseToken),
        lease_expires_at: get::<Option<i64>>(row, "lease_expires_at")?.map(from_micros),
        cancel_requested: get::<i64>(row, "cancel_requested")? != 0,
        unhandled: get::<i64>(row, "unhandled")? != 0,
    })
}

/// The lease of a claimed row, read without the rest of it (so that a row
/// whose other columns cannot be decoded can still be failed, fenced).
pub(crate) fn lease(row: &SqliteRow) -> StoreResult<Lease> {
    Ok(Lease {
        job_id: JobId(get(row, "id")?),
        token: LeaseToken(get(row, "lease_token")?),
    })
}

pub(crate) fn node(row: &SqliteRow) -> StoreResult<NodeInfo> {
    let list = |column: &str| -> StoreResult<Vec<String>> {
        serde_json::from_str(&get::<String>(row, column)?).map_err(|e| StoreError::Corrupt {
            table: "capstan_nodes",
            message: format!("{column}: {e}"),
        })
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
        started_at: from_micros(get(row, "started_at")?),
        heartbeat_at: from_micros(get(row, "heartbeat_at")?),
        expires_at: from_micros(get(row, "expires_at")?),
        healthy_since: from_micros(get(row, "healthy_since")?),
    })
}

pub(crate) fn state(row: &SqliteRow) -> StoreResult<JobState> {
    get::<String>(row, "state")?.parse().map_err(corrupt)
}

/// Wrap a driver error raised by `operation`: `Unavailable` when it may go
/// away by itself (another process held the write lock past the busy
/// timeout, the file could not be opened), `Database` when SQLite refused the
/// statement itself.
/// A statement SQLite refused for its data (SQLITE_TOOBIG, SQLITE_MISMATCH)
/// is `Refused`.
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
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 18 | 20)),
        _ => false,
    }
}

fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes
        // (the primary code is the low byte).
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

/// "No time yet" for `healthy_since`: far in the past, yet safe to add a
/// timeout to.
pub(crate) const LONG_AGO: i64 = i64::MIN / 4;
