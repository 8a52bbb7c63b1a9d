//! Validation of user input at the domain level: a bad job is refused with a
//! message that names the field and says what is allowed, before any I/O.

use std::time::Duration;

use thiserror::Error;

use crate::Timestamp;

/// A value given by a user that Capstan cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    /// The job kind is empty, too long, or `*` (reserved: any kind).
    #[error(
        "invalid job kind {0:?}: a kind is 1 to 200 characters, and `*` is reserved (it means any kind)"
    )]
    Kind(String),
    /// The queue name is empty, too long or holds characters outside `[A-Za-z0-9_.:-]`.
    #[error("invalid queue name {0:?}: use 1 to 100 characters from A-Z a-z 0-9 _ . : -")]
    Queue(String),
    /// `max_attempts` must be at least 1.
    #[error("invalid max_attempts {0}: a job needs at least 1 attempt (and at most 1000)")]
    MaxAttempts(i32),
    /// A timeout of zero would cancel every handler at once; one over
    /// [`crate::limits::MAX_TIMEOUT`] is refused too.
    #[error("invalid timeout {0:?}: a job timeout is more than zero and at most 1 year (365 days)")]
    Timeout(Duration),
    /// A duration past its bound (see [`crate::limits`]).
    #[error("invalid {name} {value:?}: at most {max:?} ({} days) is accepted", max.as_secs() / 86_400)]
    Duration {
        /// Which duration (field or setting).
        name: &'static str,
        /// The value given.
        value: Duration,
        /// The bound.
        max: Duration,
    },
    /// A `run_at` before 1970 or more than 100 years ahead.
    #[error("invalid run_at {0}: give a time between 1970-01-01 and 100 years from now")]
    RunAt(Timestamp),
    /// A JSON payload too big, too deep, or holding U+0000.
    #[error("invalid {field}: it {reason}")]
    Json {
        /// `args`, `result` or `progress`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A tag that is empty or too long, or too many tags.
    #[error("invalid tags: at most 100 tags of 1 to 200 characters each")]
    Tags,
    /// An idempotency or dedupe key that is empty or too long.
    #[error("invalid {field}: a key is 1 to 500 characters")]
    Key {
        /// Which key: `idempotency_key` or `dedupe_key`.
        field: &'static str,
    },
    /// A state name that is not one of Capstan's.
    #[error(
        "unknown job state {0:?}: expected scheduled, available, running, retryable, completed, failed or cancelled"
    )]
    UnknownState(String),
    /// An error class name that is not one of Capstan's.
    #[error("unknown error class {0:?}")]
    UnknownErrorClass(String),
    /// A notification payload over the limit every backend carries.
    #[error(
        "invalid notification payload on topic {topic}: {len} bytes, at most {max} are carried"
    )]
    Payload {
        /// The topic.
        topic: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A retry policy whose numbers do not make a schedule.
    #[error("invalid retry policy: {0}")]
    RetryPolicy(String),
}

impl ValidationError {
    /// The field (or setting) the error is about, as a job or request names
    /// it: what an API reports beside the message.
    pub fn field(&self) -> &'static str {
        match self {
            ValidationError::Kind(_) => "kind",
            ValidationError::Queue(_) => "queue",
            ValidationError::MaxAttempts(_) => "max_attempts",
            ValidationError::Timeout(_) => "timeout",
            ValidationError::Duration { name, .. } => name,
            ValidationError::RunAt(_) => "run_at",
            ValidationError::Json { field, .. } => field,
            ValidationError::Tags => "tags",
            ValidationError::Key { field } => field,
            ValidationError::UnknownState(_) => "state",
            ValidationError::UnknownErrorClass(_) => "class",
            ValidationError::Payload { .. } => "payload",
            ValidationError::RetryPolicy(_) => "retry",
        }
    }
}
