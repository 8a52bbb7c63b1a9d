//! Capstan's domain types: what a job is, the states it moves through, how it
//! is retried, how its errors are classified and where time comes from.
//!
//! This crate does no I/O. Everything above it (the storage seam, the two
//! backends, the runtime) speaks in these types, so a state or an error class
//! means the same thing in SQLite, in PostgreSQL and in a handler.

mod backoff;
mod clock;
mod error_class;
pub mod humantime_serde;
mod id;
mod job;
mod lease;
pub mod limits;
mod new_job;
mod retry;
mod state;
mod validation;

pub use backoff::IdleBackoff;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error_class::ErrorClass;
pub use id::{JobId, NodeId};
pub use job::{AttemptError, Job};
pub use lease::{Lease, LeaseToken};
pub use new_job::{ANY_KIND, DEFAULT_QUEUE, NewJob, validate_queue};
pub use retry::RetryPolicy;
pub use state::JobState;
pub use validation::ValidationError;

/// Timestamps everywhere in Capstan: UTC, microsecond precision once stored.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
