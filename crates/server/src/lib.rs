//! Capstan's HTTP API: enqueue and inspect jobs, and work them from any
//! language through the pull protocol (claim with a lease, heartbeat,
//! complete, fail). [`router`] builds the `axum` router over a
//! [`ServerState`]; [`serve`] runs it on a listener until a shutdown token
//! is cancelled: it stops accepting, lets requests in flight finish, and
//! ends waiting claims at once (empty).
//!
//! Invariants: every error is an RFC 9457 problem detail ([`Problem`]) with
//! the status of its cause — a client's mistake is never a 500 and never
//! changes anything; every route under `/v1` is authenticated (see
//! [`auth`]); the OpenAPI document ([`openapi`]) is generated from the
//! handlers and their types, so it cannot drift from them.
//!
//! One module per resource: [`jobs`], [`queues`], [`nodes`], [`workers`]
//! (the pull protocol), [`events`] (server-sent events, fed by the live
//! hub), [`health`].

pub mod auth;
mod config;
pub mod events;
mod extract;
pub mod health;
pub mod jobs;
mod live;
pub mod nodes;
mod problem;
pub mod queues;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use capstan::runtime::PullWorkers;
use capstan::{AnyStore, Client, RuntimeError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{Role, TokenConfig, hash_token};
pub use config::ServerConfig;
pub use problem::Problem;

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerState {
    client: Client<AnyStore>,
    pull: PullWorkers<AnyStore>,
    live: Arc<live::Live>,
    tokens: Arc<auth::Tokens>,
    config: Arc<ServerConfig>,
    stop: CancellationToken,
}

impl ServerState {
    /// The state of a server over `client`, until `stop`.
    ///
    /// # Errors
    /// [`RuntimeError::Config`] for settings that cannot work (see
    /// [`ServerConfig::validate`]), or the store's error when it cannot
    /// subscribe to wake-ups.
    pub async fn new(
        client: Client<AnyStore>,
        config: ServerConfig,
        stop: CancellationToken,
    ) -> Result<Self, RuntimeError> {
        config.validate().map_err(RuntimeError::Config)?;
        let pull = PullWorkers::start(client.clone(), config.pull(), stop.clone()).await?;
        let live = live::Live::start(client.clone(), stop.clone()).await?;
        Ok(ServerState {
            client,
            pull,
            live,
            tokens: Arc::new(auth::Tokens::new(&config.tokens)),
            config: Arc::new(config),
            stop,
        })
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Capstan",
        description = "Reliable background work for applications whose data lives in a relational database: durable jobs, and workers in any language. Errors are RFC 9457 problem details (application/problem+json). Routes under /v1 take `Authorization: Bearer <token>` when the server has tokens.\n\nLimits (a request past one is refused, nothing changed): a request body of at most server.max_body_bytes (8 MiB by default; 413); a job's args, a result: 1 MiB of JSON each; progress: 64 KiB; JSON nested at most 100 deep; at most 10,000 jobs per batch (enqueue, complete, heartbeat); a claim takes at most 1,000 jobs; a claim's wait and a wait's timeout are shortened to server.max_wait (30 s); a request that takes longer than server.request_timeout (60 s) is answered 503 (event streams excepted); durations are strings such as \"500ms\", \"30s\", \"5m\"."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "Enqueue, inspect, cancel, retry, wait"),
        (name = "workers", description = "The pull protocol: claim with a lease, heartbeat, complete, fail"),
        (name = "queues", description = "Jobs per queue and state"),
        (name = "nodes", description = "Capstan nodes and pull workers"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

/// The bearer token scheme, in the document's components.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes, with their OpenAPI document.
fn api() -> (
    Router<ServerState>,
    utoipa::openapi::OpenApi,
    Router<ServerState>,
) {
    let (v1, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(jobs::enqueue, jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(jobs::wait))
        .routes(routes!(events::job))
        .routes(routes!(events::queue))
        .routes(routes!(queues::list))
        .routes(routes!(nodes::list))
        .routes(routes!(workers::claim))
        .routes(routes!(workers::heartbeat))
        .routes(routes!(workers::heartbeat_many))
        .routes(routes!(workers::complete))
        .routes(routes!(workers::complete_many))
        .routes(routes!(workers::fail))
        .routes(routes!(workers::release))
        .split_for_parts();
    let (open, open_doc) = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .split_for_parts();
    doc.merge(open_doc);
    (v1, doc, open)
}

/// The OpenAPI document of every route, as `GET /openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The router over `state`: `/v1/…` (authenticated), `/healthz`,
/// `/readyz` and `/openapi.json`.
pub fn router(state: ServerState) -> Router {
    let (v1, doc, open) = api();
    let doc = Arc::new(doc);
    let v1 = v1.layer(middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate,
    ));
    let timeout = state.config.request_timeout;
    open.merge(v1)
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async {
            Problem::not_found("no such route: see /openapi.json for this API's routes")
        })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .layer(middleware::from_fn_with_state(timeout, within))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                Problem::internal("the request handler panicked; this is a bug in Capstan")
                    .into_response()
            },
        ))
        .with_state(state)
}

/// Answer 503 for a request that takes longer than the configured timeout
/// (event streams excepted: they last).
async fn within(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    if req.uri().path().ends_with("/events") {
        return next.run(req).await;
    }
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => Problem::timed_out(format!(
            "the request took longer than server.request_timeout ({timeout:?}); nothing it did was undone, so check before retrying a write"
        ))
        .into_response(),
    }
}

/// Serve `state`'s router on `listener` until `stop` is cancelled, then
/// stop accepting and let requests in flight finish.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(listener: TcpListener, state: ServerState) -> std::io::Result<()> {
    let stop = state.stop.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}
