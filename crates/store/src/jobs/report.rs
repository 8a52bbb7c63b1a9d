//! Building reports from the rows a statement returned. Both backends return
//! the same facts in different row types; turning them into reports happens
//! once, here.

use std::collections::{BTreeSet, HashMap};

use capstan_core::{ErrorClass, Job, JobId, JobState, Lease};

use super::{ClaimKey, ErrorRecord, Finish, LeaseReport, Outcome, RescueReport};
use crate::StoreError;

/// Put claimed jobs in claim order: highest priority, then oldest `run_at`,
/// then lowest id (`RETURNING` gives rows in no promised order).
pub fn sort_in_claim_order(jobs: &mut [Job]) {
    jobs.sort_by_key(ClaimKey::of);
}

impl LeaseReport {
    /// The report of a fenced batch write over `asked`, whose statement
    /// returned the token it matched for each job it `written` (a job row is
    /// written once per statement). By token, not by id alone: a stale and a
    /// current row for the same job in one batch are told apart.
    pub fn from_written<'a>(
        asked: impl IntoIterator<Item = &'a Lease>,
        written: &HashMap<i64, String>,
    ) -> Self {
        let mut report = LeaseReport::default();
        for lease in asked {
            if written
                .get(&lease.job_id.0)
                .is_some_and(|t| *t == lease.token.0)
            {
                report.accepted.push(lease.clone());
            } else {
                report.fenced.push(lease.clone());
            }
        }
        report
    }
}

impl RescueReport {
    /// The report of a rescue that returned `(id, new state, queue)` rows.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (JobId, JobState, String)>,
        removed_nodes: u64,
    ) -> Self {
        let mut report = RescueReport {
            removed_nodes,
            ..RescueReport::default()
        };
        let mut queues = BTreeSet::new();
        for (id, state, queue) in rows {
            match state {
                JobState::Failed => report.failed.push(id),
                JobState::Cancelled => report.cancelled.push(id),
                _ => {
                    report.retried.push(id);
                    queues.insert(queue);
                }
            }
        }
        report.queues = queues.into_iter().collect();
        report
    }
}

impl StoreError {
    /// An operator action (`cancel`, `retry`) that changed no row: the job is
    /// missing (`state` is `None`) or in a state that refuses the action.
    pub fn refused(job_id: JobId, state: Option<JobState>, action: &'static str) -> Self {
        match state {
            None => StoreError::NotFound { job_id },
            Some(state) => StoreError::InvalidTransition {
                job_id,
                state,
                action,
            },
        }
    }
}

/// The finish that fails, on its own lease, a claimed job whose row could
/// not be decoded (so that it never strands the rest of its batch).
pub fn fail_corrupt(lease: Lease, e: &StoreError) -> Finish {
    Finish {
        lease,
        outcome: Outcome::Fail {
            error: ErrorRecord {
                class: ErrorClass::Permanent,
                message: format!(
                    "this job's row could not be read ({e}); it was failed on its own so that it cannot stall its queue"
                ),
            },
        },
    }
}
