//! The states of a job and which transitions make sense. The text of each
//! state is exactly what both backends store in the `state` column.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Where a job is in its life.
///
/// ```text
/// scheduled ──(run_at reached)──▶ available ──(claim)──▶ running ──▶ completed
///     ▲                              ▲                     │  │  └─▶ failed / cancelled
///     └────────(snooze)──────────────┼─────────────────────┘  │
///                          retryable ◀──(error, attempts left)┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its `run_at`, which is in the future.
    Scheduled,
    /// Ready to be claimed by a worker.
    Available,
    /// Held by a worker (a node and an attempt number).
    Running,
    /// Failed an attempt and waits for its backoff before running again.
    Retryable,
    /// Finished successfully.
    Completed,
    /// Finished without success: attempts spent or a permanent error.
    Failed,
    /// Cancelled by a user before it could finish.
    Cancelled,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The text stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// True for the states in which a job waits to run: scheduled, available, retryable.
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            JobState::Scheduled | JobState::Available | JobState::Retryable
        )
    }

    /// True for the final states: completed, failed, cancelled.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ValidationError::UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_parses_back_from_its_text() {
        for st in JobState::ALL {
            assert_eq!(st.as_str().parse::<JobState>().unwrap(), st);
        }
        assert!("pending".parse::<JobState>().is_err());
    }

    #[test]
    fn each_state_is_waiting_running_or_finished() {
        use JobState::*;
        let waiting: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| s.is_waiting())
            .collect();
        let finished: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| s.is_finished())
            .collect();
        assert_eq!(waiting, vec![Scheduled, Available, Retryable]);
        assert_eq!(finished, vec![Completed, Failed, Cancelled]);
        assert!(!Running.is_waiting() && !Running.is_finished());
    }
}
