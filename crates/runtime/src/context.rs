//! What a running handler knows and can do: its job, a cancellation signal,
//! and a heartbeat that extends its lease and its timeout.
//!
//! A handler's deadline has two parts: its timeout (from its start, or its
//! last successful heartbeat) and its lease, as far as this node can know it
//! (from the moment the claim or the last successful extension was *sent*,
//! plus the lease's length: the database's lease started later, so it ends
//! later). The handler is stopped at the earlier of the two, so it never runs
//! past the lease the database knows and cannot run beside a rescued copy of
//! itself. Only an extension the database accepted moves either part.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_core::limits::{self, MAX_PROGRESS_BYTES};
use capstan_core::{JobId, Lease};
use capstan_store::StoreError;
use capstan_store::jobs::{ExtendLeases, Extension, LeaseReport};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::JobError;

/// Extends running jobs' leases in the store, with the store's type erased
/// (handlers never see a backend type).
pub(crate) trait LeaseKeeper: Send + Sync {
    fn extend(
        &self,
        leases: Vec<Extension>,
    ) -> Pin<Box<dyn Future<Output = Result<LeaseReport, StoreError>> + Send + '_>>;
}

pub(crate) struct StoreLeaseKeeper<S> {
    pub(crate) store: S,
    pub(crate) clock: Arc<dyn capstan_core::Clock>,
    /// Progress recorded is a change live views show.
    pub(crate) hints: Arc<crate::changes::Hints>,
}

impl<S: capstan_store::Store> LeaseKeeper for StoreLeaseKeeper<S> {
    fn extend(
        &self,
        leases: Vec<Extension>,
    ) -> Pin<Box<dyn Future<Output = Result<LeaseReport, StoreError>> + Send + '_>> {
        Box::pin(async move {
            let progressed: Vec<capstan_core::JobId> = leases
                .iter()
                .filter(|e| e.progress.is_some())
                .map(|e| e.lease.job_id)
                .collect();
            let report = self
                .store
                .extend_leases(&ExtendLeases {
                    leases,
                    now: self.clock.pinned(),
                })
                .await?;
            if !progressed.is_empty() {
                let accepted = progressed
                    .into_iter()
                    .filter(|id| report.accepted.iter().any(|l| l.job_id == *id));
                self.hints.send(&self.store, accepted, false);
            }
            Ok(report)
        })
    }
}

/// When a handler must stop: see the module docs.
#[derive(Debug)]
pub(crate) struct Deadline {
    at: Mutex<Times>,
    timeout: Duration,
    lease: Duration,
    /// Stop this long before the lease ends (a stopped handler may take
    /// this long to return).
    margin: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Times {
    timeout_at: Instant,
    lease_until: Instant,
}

/// Which part of a [`Deadline`] was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reached {
    /// The handler ran its whole timeout without a heartbeat.
    Timeout,
    /// Its lease is about to end and could not be extended.
    Lease,
}

impl Deadline {
    pub(crate) fn new(
        timeout: Duration,
        lease: Duration,
        lease_until: Instant,
        margin: Duration,
    ) -> Self {
        Deadline {
            at: Mutex::new(Times {
                timeout_at: Instant::now() + timeout,
                lease_until,
            }),
            timeout,
            lease,
            margin,
        }
    }

    fn times(&self) -> Times {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lease_bound(&self, t: Times) -> Instant {
        t.lease_until
            .checked_sub(self.margin)
            .unwrap_or(t.lease_until)
    }

    /// When the handler must be stopped, unless a heartbeat moves it.
    pub(crate) fn at(&self) -> Instant {
        let t = self.times();
        t.timeout_at.min(self.lease_bound(t))
    }

    /// What was reached, if the deadline has passed at `now`.
    pub(crate) fn reached(&self, now: Instant) -> Option<Reached> {
        let t = self.times();
        let bound = self.lease_bound(t);
        if bound <= now && bound < t.timeout_at {
            Some(Reached::Lease)
        } else if t.timeout_at <= now {
            Some(Reached::Timeout)
        } else {
            None
        }
    }

    /// An extension sent at `sent` was accepted: timeout and lease start over.
    fn extended(&self, sent: Instant) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = Times {
            timeout_at: sent + self.timeout,
            lease_until: sent + self.lease,
        };
    }
}

/// The running job, as its handler sees it.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) lease: Lease,
    pub(crate) kind: Arc<str>,
    pub(crate) queue: Arc<str>,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) cancel: CancellationToken,
    pub(crate) deadline: Arc<Deadline>,
    pub(crate) keeper: Arc<dyn LeaseKeeper>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("lease", &self.lease)
            .field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl JobContext {
    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.lease.job_id
    }

    /// The lease this attempt holds the job under.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The job's queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// This attempt's number (1 for the first run).
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// Attempts the job is allowed.
    pub fn max_attempts(&self) -> i32 {
        self.max_attempts
    }

    /// True when this is the job's last allowed attempt.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// Resolves when the handler should stop: a user cancelled the job, it
    /// was taken from this node, or the node is shutting down past its grace
    /// period. A handler that ignores it is dropped after `cancel_grace`;
    /// one that still returns `Ok` within it completes its job with that
    /// result (the work is done: dropping it would only run it again).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// True once [`JobContext::cancelled`] has resolved.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Tell Capstan the handler is alive and making progress: the job's lease
    /// and its timeout start over, and `progress` (if any, at most 64 KiB as
    /// JSON) is recorded on the job for everyone to see. When it fails,
    /// neither moves: the handler is still stopped at its old deadline.
    ///
    /// # Errors
    /// A permanent [`JobError`] when this worker no longer holds the job (it
    /// was rescued and may run elsewhere: the handler is told to stop), or
    /// when `progress` is too big (nothing was recorded); a retryable one
    /// when the database could not be reached.
    pub async fn heartbeat(&self, progress: Option<Value>) -> Result<(), JobError> {
        if let Some(p) = &progress {
            limits::check_json("progress", p, MAX_PROGRESS_BYTES, false)
                .map_err(|e| JobError::permanent(format!("{e}; nothing was recorded")))?;
        }
        let sent = Instant::now();
        let report = self
            .keeper
            .extend(vec![Extension {
                lease: self.lease.clone(),
                duration: self.deadline.lease,
                progress,
            }])
            .await
            .map_err(|e| JobError::retryable(format!("heartbeat not recorded: {e}")))?;
        if report.accepted.contains(&self.lease) {
            self.deadline.extended(sent);
            return Ok(());
        }
        self.cancel.cancel();
        Err(JobError::permanent(
            StoreError::Fenced {
                lease: self.lease.clone(),
            }
            .to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_stops_at_the_earlier_of_its_timeout_and_its_lease() {
        let now = Instant::now();
        let s = Duration::from_secs;
        // A lease the database holds 3 s more, a timeout of 10 s, a stopped
        // handler allowed 1 s: the lease decides, 2 s from now.
        let d = Deadline::new(s(10), s(11), now + s(3), s(1));
        assert!(d.at() <= now + s(2));
        assert_eq!(d.reached(now + s(1)), None);
        assert_eq!(
            d.reached(now + s(2) + Duration::from_millis(50)),
            Some(Reached::Lease)
        );
        // A lease that covers the timeout: the timeout decides.
        let d = Deadline::new(s(10), s(11), now + s(12), s(1));
        assert_eq!(d.reached(now + s(9)), None);
        assert_eq!(
            d.reached(now + s(10) + Duration::from_millis(50)),
            Some(Reached::Timeout)
        );
        // An accepted extension moves both.
        d.extended(now + s(5));
        assert_eq!(d.reached(now + s(11)), None);
        assert!(d.at() >= now + s(15));
    }
}
