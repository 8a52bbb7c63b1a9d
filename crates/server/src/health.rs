//! `/healthz` (the process answers) and `/readyz` (the database answers
//! and its schema is this version's): for load balancers and
//! orchestrators, without a token.

use axum::extract::State;
use capstan::Store;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ServerState;
use crate::extract::Json;
use crate::problem::Problem;

/// All is well.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The database is reachable and migrated to this version.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
pub(crate) async fn readyz(State(state): State<ServerState>) -> Result<Json<Health>, Problem> {
    match state.client.store().check_schema().await {
        Ok(()) => Ok(Json(Health {
            status: "ok".into(),
        })),
        Err(e) => Err(Problem::unavailable(e.to_string())),
    }
}
