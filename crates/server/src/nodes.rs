//! `/v1/nodes`: the Capstan nodes and pull workers registered in the
//! database, with their last heartbeat.

use axum::extract::State;
use capstan::runtime::PULL_INCARNATION;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ServerState;
use crate::auth::{Access, Need};
use crate::extract::Json;
use crate::problem::Problem;

/// A node or a pull worker.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeView {
    /// Its id (a worker's name).
    pub id: String,
    /// `node` (a Capstan process running handlers) or `worker` (a pull
    /// worker of the HTTP API).
    pub role: String,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// The kinds it takes (`*`: any).
    pub kinds: Vec<String>,
    /// When it registered (a worker: when a server first wrote its row).
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (a worker: its last call, within a sixth of its
    /// timeout).
    pub heartbeat_at: DateTime<Utc>,
    /// When it counts as dead unless it beats again.
    pub expires_at: DateTime<Utc>,
    /// Not expired now.
    pub live: bool,
}

/// Every registered node and worker.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeList {
    /// By id.
    pub nodes: Vec<NodeView>,
}

/// Every registered node and pull worker.
#[utoipa::path(get, path = "/v1/nodes", tag = "nodes",
    responses((status = 200, body = NodeList)))]
pub(crate) async fn list(
    State(state): State<ServerState>,
    access: Access,
) -> Result<Json<NodeList>, Problem> {
    access.require(Need::Read)?;
    let now = state.client.clock().now();
    let mut nodes: Vec<NodeView> = state
        .client
        .nodes()
        .await?
        .into_iter()
        .map(|n| NodeView {
            live: n.is_live(now),
            role: if n.incarnation == PULL_INCARNATION {
                "worker"
            } else {
                "node"
            }
            .to_owned(),
            id: n.id.0,
            queues: n.queues,
            kinds: n.kinds,
            started_at: n.started_at,
            heartbeat_at: n.heartbeat_at,
            expires_at: n.expires_at,
        })
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(NodeList { nodes }))
}
