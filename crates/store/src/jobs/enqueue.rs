//! Enqueue: many jobs in one round trip.

use capstan_core::{JobId, JobState, NewJob, Timestamp};
use serde::Serialize;

/// Insert `jobs` (validated beforehand by the caller or the store).
#[derive(Debug, Clone)]
pub struct InsertMany {
    /// The jobs, in order; the report keeps the same order.
    pub jobs: Vec<NewJob>,
    /// `max_attempts` for jobs that do not set their own.
    pub default_max_attempts: i32,
    /// The enqueue time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// What became of one job of an [`InsertMany`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Inserted {
    /// The new job's id, or the id of the job that already had its key.
    pub id: JobId,
    /// The state of that job right after the insert.
    pub state: JobState,
    /// True when no job was written because a job with the same
    /// idempotency key (any state) or dedupe key (not yet started) exists.
    pub existing: bool,
}
