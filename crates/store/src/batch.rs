//! The JSON rows that carry a batch into one set-based statement
//! (`json_each` on SQLite, `jsonb_to_recordset` on PostgreSQL). Both backends
//! encode batches here, so a finish means the same columns in both.

use capstan_core::{JobState, NewJob};
use serde::Serialize;
use serde_json::Value;

use crate::{Finish, Outcome};

/// One finish, flattened for SQL.
#[derive(Debug, Serialize)]
pub struct FinishRow<'a> {
    /// The job.
    pub id: i64,
    /// The attempt that ran.
    pub attempt: i32,
    /// The state to move to.
    pub state: &'static str,
    /// The result (completed jobs only).
    pub result: Option<&'a Value>,
    /// The error class to append to the history, if any.
    pub error_class: Option<&'static str>,
    /// The error message to append, if any.
    pub error_message: Option<&'a str>,
    /// New `run_at` = now + this; `None` keeps `run_at`.
    pub delay_ms: Option<i64>,
    /// 1 when the attempt is given back (snooze, hand-back).
    pub refund: i32,
}

impl<'a> FinishRow<'a> {
    /// Flatten one finish.
    pub fn new(f: &'a Finish) -> Self {
        let ms = |d: &std::time::Duration| d.as_millis().min(i64::MAX as u128) as i64;
        let mut row = FinishRow {
            id: f.id.0,
            attempt: f.attempt,
            state: JobState::Completed.as_str(),
            result: None,
            error_class: None,
            error_message: None,
            delay_ms: None,
            refund: 0,
        };
        match &f.outcome {
            Outcome::Complete { result } => row.result = Some(result),
            Outcome::Retry { error, delay } => {
                row.state = if delay.is_zero() {
                    JobState::Available.as_str()
                } else {
                    JobState::Retryable.as_str()
                };
                row.error_class = Some(error.class.as_str());
                row.error_message = Some(&error.message);
                row.delay_ms = Some(ms(delay));
            }
            Outcome::Fail { error } => {
                row.state = JobState::Failed.as_str();
                row.error_class = Some(error.class.as_str());
                row.error_message = Some(&error.message);
            }
            Outcome::Snooze { delay } => {
                row.state = if delay.is_zero() {
                    JobState::Available.as_str()
                } else {
                    JobState::Scheduled.as_str()
                };
                row.delay_ms = Some(ms(delay));
                row.refund = 1;
            }
            Outcome::Cancel { error } => {
                row.state = JobState::Cancelled.as_str();
                row.error_class = Some(error.class.as_str());
                row.error_message = Some(&error.message);
            }
            Outcome::HandBack => {
                row.state = JobState::Available.as_str();
                row.refund = 1;
            }
        }
        row
    }
}

/// Encode finishes as one JSON array.
pub fn finish_rows_json(finishes: &[Finish]) -> String {
    let rows: Vec<FinishRow<'_>> = finishes.iter().map(FinishRow::new).collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".to_owned())
}

/// One job to insert, flattened for SQL, with its attempts resolved.
#[derive(Debug, Serialize)]
pub struct InsertRow<'a> {
    /// Queue.
    pub queue: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// Args.
    pub args: &'a Value,
    /// Priority.
    pub priority: i16,
    /// Absolute run time, if given.
    pub run_at: Option<String>,
    /// Delay from now, in ms, if given (ignored when `run_at` is set).
    pub delay_ms: Option<i64>,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Per-attempt timeout.
    pub timeout_ms: Option<i64>,
    /// Tags.
    pub tags: &'a [String],
    /// Idempotency key.
    pub idempotency_key: Option<&'a str>,
    /// Dedupe key.
    pub dedupe_key: Option<&'a str>,
}

impl<'a> InsertRow<'a> {
    /// Flatten one job; `default_max_attempts` applies when it sets none.
    pub fn new(j: &'a NewJob, default_max_attempts: i32) -> Self {
        InsertRow {
            queue: &j.queue,
            kind: &j.kind,
            args: &j.args,
            priority: j.priority,
            run_at: j
                .run_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            delay_ms: j.delay.map(|d| d.as_millis().min(i64::MAX as u128) as i64),
            max_attempts: j.max_attempts.unwrap_or(default_max_attempts),
            timeout_ms: j
                .timeout
                .map(|d| d.as_millis().min(i64::MAX as u128) as i64),
            tags: &j.tags,
            idempotency_key: j.idempotency_key.as_deref(),
            dedupe_key: j.dedupe_key.as_deref(),
        }
    }
}
