//! A job as stored: what to run, where it is in its life, who holds it and
//! every error its attempts met.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ErrorClass, JobId, JobState, Lease, LeaseToken, NodeId, Timestamp};

/// One attempt's error, as kept in a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// When the error was recorded.
    pub at: Timestamp,
    /// The attempt (1-based) that met the error.
    pub attempt: i32,
    /// How the error was classified.
    pub class: ErrorClass,
    /// What went wrong, in the handler's words.
    pub message: String,
}

/// A job as stored in the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// The queue it waits in.
    pub queue: String,
    /// Which handler runs it.
    pub kind: String,
    /// The handler's input.
    pub args: Value,
    /// Higher runs first.
    pub priority: i16,
    /// Where it is in its life.
    pub state: JobState,
    /// Attempts started so far (the current one included while running).
    pub attempt: i32,
    /// Attempts allowed before the job fails.
    pub max_attempts: i32,
    /// When it may run (or run again).
    pub run_at: Timestamp,
    /// Its own timeout per attempt, in milliseconds; `None` uses its queue's.
    pub timeout_ms: Option<i64>,
    /// Every attempt's error, oldest first.
    pub errors: Vec<AttemptError>,
    /// What the handler returned, once completed.
    pub result: Option<Value>,
    /// The last progress a running handler reported.
    pub progress: Option<Value>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// At most one job per idempotency key while the job is retained.
    pub idempotency_key: Option<String>,
    /// At most one not-yet-started job per dedupe key.
    pub dedupe_key: Option<String>,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When its last attempt started.
    pub attempted_at: Option<Timestamp>,
    /// When it reached a final state.
    pub finished_at: Option<Timestamp>,
    /// The node that holds it while running.
    pub node_id: Option<NodeId>,
    /// While running: the token of the claim that holds it (see [`Lease`]).
    pub lease_token: Option<LeaseToken>,
    /// While running: when the holder's lease runs out unless it heartbeats.
    pub lease_expires_at: Option<Timestamp>,
    /// A user asked to cancel it while it ran: it ends `cancelled` rather
    /// than running again.
    pub cancel_requested: bool,
    /// Available, but no live node serving its queue has a handler for its
    /// kind: it waits outside the claim order until one registers.
    pub unhandled: bool,
}

impl Job {
    /// The lease it is held under, while running.
    pub fn lease(&self) -> Option<Lease> {
        self.lease_token.clone().map(|token| Lease {
            job_id: self.id,
            token,
        })
    }

    /// How long one attempt may run: its own timeout, else `default`, at
    /// most [`crate::limits::MAX_TIMEOUT`] (as the claim bounds it in SQL).
    pub fn timeout_or(&self, default: std::time::Duration) -> std::time::Duration {
        self.timeout_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map(std::time::Duration::from_millis)
            .unwrap_or(default)
            .min(crate::limits::MAX_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(token: Option<&str>) -> Job {
        serde_json::from_value(json!({
            "id": 42, "queue": "default", "kind": "k", "args": null, "priority": 0,
            "state": "running", "attempt": 1, "max_attempts": 3,
            "run_at": "2026-01-01T00:00:00Z", "timeout_ms": null, "errors": [],
            "result": null, "progress": null, "tags": [], "idempotency_key": null,
            "dedupe_key": null, "created_at": "2026-01-01T00:00:00Z",
            "attempted_at": null, "finished_at": null, "node_id": "n",
            "lease_token": token, "lease_expires_at": null,
            "cancel_requested": false, "unhandled": false
        }))
        .unwrap()
    }

    #[test]
    fn a_running_job_names_its_lease_and_a_waiting_one_none() {
        let lease = job(Some("00000000deadbeef")).lease().unwrap();
        assert_eq!(lease.job_id, JobId(42));
        assert_eq!(lease.token.as_str(), "00000000deadbeef");
        assert_eq!(job(None).lease(), None);
    }
}
