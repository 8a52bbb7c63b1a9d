//! Validation of user input at the domain level: a bad job is refused with a
//! message that names the field and says what is allowed, before any I/O.

use thiserror::Error;

/// A value given by a user that Capstan cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    /// The job kind is empty or too long.
    #[error("invalid job kind {0:?}: a kind is 1 to 200 characters")]
    Kind(String),
    /// The queue name is empty, too long or holds characters outside `[A-Za-z0-9_.:-]`.
    #[error("invalid queue name {0:?}: use 1 to 100 characters from A-Z a-z 0-9 _ . : -")]
    Queue(String),
    /// `max_attempts` must be at least 1.
    #[error("invalid max_attempts {0}: a job needs at least 1 attempt (and at most 1000)")]
    MaxAttempts(i32),
    /// A timeout of zero would cancel every handler at once.
    #[error("invalid timeout: a job timeout must be more than zero")]
    Timeout,
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
    /// A retry policy whose numbers do not make a schedule.
    #[error("invalid retry policy: {0}")]
    RetryPolicy(String),
}
