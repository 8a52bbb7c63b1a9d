//! The fake AI API: a local HTTP server (axum on 127.0.0.1, a free port)
//! that answers `POST /v1/summarize` from a script per document and counts
//! the calls each document got, so a test can say "exactly 3 calls".
//!
//! A document's script is a list of replies: call `n` gets reply `n`, and
//! once the list runs out its last reply repeats (a script of one 503 is an
//! API that stays down). A document without a script gets 200 at once.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Summary;

/// One scripted answer of the fake API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` header, in seconds, if the reply has one.
    pub retry_after: Option<u64>,
    /// How long the server takes before answering.
    pub delay: Duration,
}

impl Reply {
    /// 200 with a summary, at once.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// `status` at once, without `Retry-After`.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }

    /// Add `Retry-After: <secs>`.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Answer only after `delay` (a slow or hung API).
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// The body of `POST /v1/summarize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummarizeRequest {
    /// The document to summarize.
    pub document_id: String,
}

/// The scripts of seed 001's documents:
/// - `doc-ok`: 200 at once;
/// - `doc-flaky`: 429 (no `Retry-After`), then 500, then 200;
/// - `doc-unauthorized`: 401 (a bad API key: retrying cannot help);
/// - `doc-down`: 503 on every call;
/// - `doc-throttled`: 429 with `Retry-After: 7`, then 200.
pub fn seed_scripts() -> Vec<(&'static str, Vec<Reply>)> {
    vec![
        ("doc-ok", vec![Reply::ok()]),
        (
            "doc-flaky",
            vec![Reply::status(429), Reply::status(500), Reply::ok()],
        ),
        ("doc-unauthorized", vec![Reply::status(401)]),
        ("doc-down", vec![Reply::status(503)]),
        (
            "doc-throttled",
            vec![Reply::status(429).with_retry_after(7), Reply::ok()],
        ),
    ]
}

/// The server's state: the scripts and the calls counted so far.
#[derive(Debug)]
struct Api {
    scripts: HashMap<String, Vec<Reply>>,
    calls: Mutex<HashMap<String, usize>>,
}

impl Api {
    /// Count one more call for `document_id`; return its number (1-based).
    fn count(&self, document_id: &str) -> usize {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let n = calls.entry(document_id.to_owned()).or_default();
        *n += 1;
        *n
    }

    /// The reply to call `call` for `document_id`.
    fn reply(&self, document_id: &str, call: usize) -> Reply {
        self.scripts
            .get(document_id)
            .and_then(|script| script.get(call - 1).or(script.last()))
            .cloned()
            .unwrap_or_else(Reply::ok)
    }
}

/// A running fake AI API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeAiApi {
    url: String,
    api: Arc<Api>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl FakeAiApi {
    /// Start the server on a free loopback port with these scripts (see
    /// [`seed_scripts`]).
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start<I, K>(scripts: I) -> io::Result<Self>
    where
        I: IntoIterator<Item = (K, Vec<Reply>)>,
        K: Into<String>,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let api = Arc::new(Api {
            scripts: scripts.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            calls: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/v1/summarize", post(summarize))
            .with_state(api.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "the fake AI API stopped");
            }
        });
        Ok(FakeAiApi {
            url,
            api,
            stop: Some(stop),
            task,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls received for `document_id` so far.
    pub fn calls(&self, document_id: &str) -> usize {
        let calls = self.api.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.get(document_id).copied().unwrap_or(0)
    }

    /// Calls received for all documents so far.
    pub fn total_calls(&self) -> usize {
        let calls = self.api.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.values().sum()
    }

    /// Stop the server: let answers in flight finish for up to a second,
    /// then drop the rest (a scripted delay does not hold the shutdown up).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(Duration::from_secs(1), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for FakeAiApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `POST /v1/summarize`: count the call, then answer from the script.
async fn summarize(State(api): State<Arc<Api>>, Json(req): Json<SummarizeRequest>) -> Response {
    let call = api.count(&req.document_id);
    let reply = api.reply(&req.document_id, call);
    tracing::debug!(document_id = %req.document_id, call, status = reply.status, "fake AI API call");
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() {
        let summary = Summary {
            summary: format!("summary of {} (call {call})", req.document_id),
            document_id: req.document_id,
        };
        return (status, Json(summary)).into_response();
    }
    let message = format!("scripted {} on call {call}", status.as_u16());
    let body = serde_json::json!({ "error": { "message": message } });
    let mut response = (status, Json(body)).into_response();
    if let Some(secs) = reply.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
