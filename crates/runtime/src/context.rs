//! What a running handler knows and can do: its job, a cancellation signal,
//! and a heartbeat that extends its lease and its timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_core::{JobId, NodeId};
use capstan_store::{ExtendLease, JobStore, StoreError};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::JobError;

/// Extends a running job's lease in the store, with the store's type erased
/// (handlers never see a backend type).
pub(crate) trait LeaseKeeper: Send + Sync {
    fn extend(
        &self,
        id: JobId,
        attempt: i32,
        lease: Duration,
        progress: Option<Value>,
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + '_>>;
}

pub(crate) struct StoreLeaseKeeper<S> {
    pub(crate) store: S,
    pub(crate) node: NodeId,
    pub(crate) clock: Arc<dyn capstan_core::Clock>,
}

impl<S: JobStore> LeaseKeeper for StoreLeaseKeeper<S> {
    fn extend(
        &self,
        id: JobId,
        attempt: i32,
        lease: Duration,
        progress: Option<Value>,
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + '_>> {
        Box::pin(async move {
            self.store
                .extend_lease(&ExtendLease {
                    id,
                    attempt,
                    node: self.node.clone(),
                    lease,
                    progress,
                    now: self.clock.pinned(),
                })
                .await
        })
    }
}

/// The handler's deadline, pushed back by each heartbeat.
#[derive(Debug)]
pub(crate) struct Deadline {
    at: Mutex<Instant>,
    timeout: Duration,
}

impl Deadline {
    pub(crate) fn new(timeout: Duration) -> Self {
        Deadline {
            at: Mutex::new(Instant::now() + timeout),
            timeout,
        }
    }

    pub(crate) fn at(&self) -> Instant {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push_back(&self) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now() + self.timeout;
    }
}

/// The running job, as its handler sees it.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) id: JobId,
    pub(crate) kind: Arc<str>,
    pub(crate) queue: Arc<str>,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) cancel: CancellationToken,
    pub(crate) deadline: Arc<Deadline>,
    pub(crate) lease: Duration,
    pub(crate) keeper: Arc<dyn LeaseKeeper>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl JobContext {
    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.id
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

    /// Resolves when the handler should stop: a user cancelled the job, or the
    /// node is shutting down past its grace period. A handler that ignores it
    /// is dropped shortly after.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// True once [`JobContext::cancelled`] has resolved.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Tell Capstan the handler is alive and making progress: the job's lease
    /// and its timeout start over, and `progress` (if any) is recorded on the
    /// job for everyone to see.
    ///
    /// # Errors
    /// A permanent [`JobError`] when this worker no longer holds the job (it
    /// was rescued and may run elsewhere): stop working on it.
    pub async fn heartbeat(&self, progress: Option<Value>) -> Result<(), JobError> {
        self.deadline.push_back();
        self.keeper
            .extend(self.id, self.attempt, self.lease, progress)
            .await
            .map_err(|e| match e {
                StoreError::Fenced { .. } => {
                    self.cancel.cancel();
                    JobError::permanent(e.to_string())
                }
                other => JobError::retryable(other.to_string()),
            })
    }
}
