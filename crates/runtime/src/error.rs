//! Errors: [`RuntimeError`] for the library's operations, [`JobError`] for
//! what a handler returns when its job did not succeed.

use std::fmt;
use std::time::Duration;

use capstan_core::{ErrorClass, JobId};
use capstan_store::StoreError;
use thiserror::Error;

/// What a Capstan runtime operation can fail with. New variants may come
/// (match with a wildcard arm).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The store failed or refused the operation.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration cannot work; the message says which setting and why.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Two handlers were registered for one kind.
    #[error("a handler for kind {0:?} is already registered: each kind has exactly one handler")]
    DuplicateKind(String),
    /// A node's task ended without returning (it panicked or was cancelled).
    #[error("node {node} stopped abnormally: {reason}")]
    NodeFailed {
        /// The node.
        node: capstan_core::NodeId,
        /// What the task runtime said.
        reason: String,
    },
    /// A job's typed args could not be encoded as JSON.
    #[error("cannot encode the args of a {kind} job as JSON: {source}")]
    Args {
        /// The job's kind.
        kind: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A request of a pull worker is not one Capstan can act on (nothing
    /// was changed); the message says which field and what it accepts.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field, as the request names it.
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A pull worker's name is the id of a live node (or of a worker that
    /// other Capstan processes serve under another role).
    #[error(
        "the worker name {worker:?} is the id of a live node: give each worker a name of its own"
    )]
    WorkerNameInUse {
        /// The name asked for.
        worker: String,
    },
    /// Waiting for a job gave up.
    #[error("job {job_id} did not finish within {waited:?} (it is still {state})")]
    WaitTimeout {
        /// The job waited for.
        job_id: JobId,
        /// How long.
        waited: Duration,
        /// Its state when the wait gave up.
        state: capstan_core::JobState,
    },
}

/// Why a handler's attempt did not succeed, and what to do about it.
///
/// Any `std::error::Error` converts into a retryable `JobError` with `?`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub(crate) class: ErrorClass,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) snooze: Option<Duration>,
}

impl JobError {
    /// A transient error: the job is retried after its policy's backoff.
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError {
            class: ErrorClass::Retryable,
            message: message.into(),
            retry_after: None,
            snooze: None,
        }
    }

    /// An error that retrying cannot fix: the job fails now.
    pub fn permanent(message: impl Into<String>) -> Self {
        JobError {
            class: ErrorClass::Permanent,
            message: message.into(),
            ..Self::retryable("")
        }
    }

    /// A transient error that says when to try again (HTTP 429 `Retry-After`):
    /// the retry waits exactly `after` instead of the backoff.
    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        JobError {
            retry_after: Some(after),
            ..Self::retryable(message)
        }
    }

    /// Not an error: run the job again after `delay`, giving the attempt back.
    pub fn snooze(delay: Duration) -> Self {
        JobError {
            snooze: Some(delay),
            ..Self::retryable("snoozed")
        }
    }

    /// The error's class.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The delay the error asks for, if any.
    pub fn retry_after_delay(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.class, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        JobError::retryable(message)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use capstan_core::ErrorClass;

    use super::JobError;

    /// What a handler's own unit tests read back from the errors it returns.
    #[test]
    fn an_error_says_its_class_message_and_delay() {
        let e = JobError::retry_after("HTTP 429", Duration::from_secs(17));
        assert_eq!(
            (e.class(), e.message(), e.retry_after_delay()),
            (
                ErrorClass::Retryable,
                "HTTP 429",
                Some(Duration::from_secs(17))
            )
        );
        let e = JobError::permanent("HTTP 401");
        assert_eq!(
            (e.class(), e.message(), e.retry_after_delay()),
            (ErrorClass::Permanent, "HTTP 401", None)
        );
        assert_eq!(JobError::retryable("x").retry_after_delay(), None);
    }
}
