//! `/v1/queues`: jobs per queue and state. (A queue's claim, for pull
//! workers, is in `workers`.)

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ServerState;
use crate::auth::{Access, Need};
use crate::extract::Json;
use crate::problem::Problem;

/// One queue's jobs by state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueView {
    /// The queue.
    pub queue: String,
    /// Waiting for their `run_at`.
    pub scheduled: u64,
    /// Ready to run.
    pub available: u64,
    /// Of the available ones: no live node or worker takes their kind.
    pub unhandled: u64,
    /// Held by a node or worker.
    pub running: u64,
    /// Waiting for a retry.
    pub retryable: u64,
    /// Finished successfully (within retention).
    pub completed: u64,
    /// Failed (within retention).
    pub failed: u64,
    /// Cancelled (within retention).
    pub cancelled: u64,
}

/// Every queue with jobs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueList {
    /// By queue name.
    pub queues: Vec<QueueView>,
}

/// Jobs per queue and state.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses((status = 200, body = QueueList)))]
pub(crate) async fn list(
    State(state): State<ServerState>,
    access: Access,
) -> Result<Json<QueueList>, Problem> {
    access.require(Need::Read)?;
    let counts = state.client.queue_counts().await?;
    Ok(Json(QueueList {
        queues: counts
            .into_iter()
            .map(|c| QueueView {
                queue: c.queue,
                scheduled: c.scheduled,
                available: c.available,
                unhandled: c.unhandled,
                running: c.running,
                retryable: c.retryable,
                completed: c.completed,
                failed: c.failed,
                cancelled: c.cancelled,
            })
            .collect(),
    }))
}
