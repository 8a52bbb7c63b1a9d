//! The JSON rows that carry a batch into one set-based statement
//! (`json_each` on SQLite, `jsonb_to_recordset` on PostgreSQL). Both backends
//! encode batches here, so a finish means the same columns in both.

use std::borrow::Cow;

use capstan_core::limits::{self, MAX_RESULT_BYTES};
use capstan_core::{ErrorClass, JobState, NewJob};
use serde::Serialize;
use serde_json::Value;

use super::{Extension, Finish, Outcome};
use crate::{StoreError, StoreResult};

/// One finish, flattened for SQL, with its text made storable: U+0000 in
/// the result and the message become U+FFFD, a message is cut at
/// [`limits::MAX_ERROR_MESSAGE_BYTES`], and a result over
/// [`MAX_RESULT_BYTES`] turns the finish into a permanent failure that says
/// so (the database would refuse it, and with it the whole batch).
#[derive(Debug, Serialize)]
pub struct FinishRow<'a> {
    /// The job.
    pub id: i64,
    /// The lease it was held under (the fence).
    pub lease: &'a str,
    /// The state to move to.
    pub state: &'static str,
    /// The result (completed jobs only).
    pub result: Option<Cow<'a, Value>>,
    /// The error class to append to the history, if any.
    pub error_class: Option<&'static str>,
    /// The error message to append, if any.
    pub error_message: Option<Cow<'a, str>>,
    /// New `run_at` = now + this; `None` keeps `run_at`.
    pub delay_ms: Option<i64>,
    /// 1 when the attempt is given back (snooze, hand-back).
    pub refund: i32,
}

/// Whole milliseconds, saturating (every duration is bounded before it gets here).
fn ms(d: &std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl<'a> FinishRow<'a> {
    /// Flatten one finish.
    pub fn new(f: &'a Finish) -> Self {
        let mut row = FinishRow {
            id: f.lease.job_id.0,
            lease: f.lease.token.as_str(),
            state: JobState::Completed.as_str(),
            result: None,
            error_class: None,
            error_message: None,
            delay_ms: None,
            refund: 0,
        };
        let error = |row: &mut Self, class: ErrorClass, message: Cow<'a, str>| {
            row.error_class = Some(class.as_str());
            row.error_message = Some(match message {
                Cow::Borrowed(m) => limits::error_message(m),
                Cow::Owned(m) => Cow::Owned(limits::error_message(&m).into_owned()),
            });
        };
        match &f.outcome {
            Outcome::Complete { result } => {
                if let Some(size) = limits::json_over(result, MAX_RESULT_BYTES) {
                    row.state = JobState::Failed.as_str();
                    error(
                        &mut row,
                        ErrorClass::Permanent,
                        Cow::Owned(format!(
                            "the handler's result is {size} bytes as JSON, more than the limit of {MAX_RESULT_BYTES}: store big results elsewhere and return their key"
                        )),
                    );
                } else {
                    row.result = Some(match limits::without_nul(result) {
                        Some(clean) => Cow::Owned(clean),
                        None => Cow::Borrowed(result),
                    });
                }
            }
            Outcome::Retry { error: e, delay } => {
                row.state = if delay.is_zero() {
                    JobState::Available.as_str()
                } else {
                    JobState::Retryable.as_str()
                };
                error(&mut row, e.class, Cow::Borrowed(&e.message));
                row.delay_ms = Some(ms(delay));
            }
            Outcome::Fail { error: e } => {
                row.state = JobState::Failed.as_str();
                error(&mut row, e.class, Cow::Borrowed(&e.message));
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
            Outcome::Cancel { error: e } => {
                row.state = JobState::Cancelled.as_str();
                error(&mut row, e.class, Cow::Borrowed(&e.message));
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
///
/// # Errors
/// [`StoreError::Encode`] (never in practice: every field encodes).
pub fn finish_rows_json(finishes: &[Finish]) -> StoreResult<String> {
    let rows: Vec<FinishRow<'_>> = finishes.iter().map(FinishRow::new).collect();
    encode("finish_many", &rows)
}

/// `value` as a JSON string, or [`StoreError::Encode`] naming `operation`.
///
/// # Errors
/// When serde cannot encode it.
pub fn encode(operation: &'static str, value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { operation, source })
}

/// One lease extension, flattened for SQL.
#[derive(Debug, Serialize)]
struct ExtensionRow<'a> {
    id: i64,
    lease: &'a str,
    lease_ms: i64,
    progress: Option<Cow<'a, Value>>,
}

/// Encode lease extensions as one JSON array (progress cleaned of U+0000).
///
/// # Errors
/// [`StoreError::Encode`] (never in practice: every field encodes).
pub fn extension_rows_json(leases: &[Extension]) -> StoreResult<String> {
    let rows: Vec<ExtensionRow<'_>> = leases
        .iter()
        .map(|e| ExtensionRow {
            id: e.lease.job_id.0,
            lease: e.lease.token.as_str(),
            lease_ms: ms(&e.duration),
            progress: e.progress.as_ref().map(|p| match limits::without_nul(p) {
                Some(clean) => Cow::Owned(clean),
                None => Cow::Borrowed(p),
            }),
        })
        .collect();
    encode("extend_leases", &rows)
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
            delay_ms: j.delay.as_ref().map(ms),
            max_attempts: j.max_attempts.unwrap_or(default_max_attempts),
            timeout_ms: j.timeout.as_ref().map(ms),
            tags: &j.tags,
            idempotency_key: j.idempotency_key.as_deref(),
            dedupe_key: j.dedupe_key.as_deref(),
        }
    }
}
