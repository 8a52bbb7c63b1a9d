//! The handler of [`KIND`](super::KIND): one attempt is one call to the AI
//! API, and the HTTP answer decides what Capstan does next:
//!
//! | answer | error | Capstan |
//! |---|---|---|
//! | 2xx | none | completed, the summary stored as the job's result |
//! | 429 or 5xx with `Retry-After: <seconds>` | [`JobError::retry_after`] | retried after exactly that long |
//! | 429 or 5xx without it | [`JobError::retryable`] | retried after the policy's backoff (2, 4, 8 s) |
//! | any other 4xx (401, 403, 404, 422, …) | [`JobError::permanent`] | failed now: retrying cannot fix a bad key or a bad request |
//! | no answer (connection refused, reset) | [`JobError::retryable`] | retried after the backoff |
//!
//! The seed's `openaiWithRetry` wrapped each call in a retry loop inside the
//! worker; here the handler only classifies, and the retry is durable: it
//! survives a restart, waits in the database, and runs on whichever node is
//! free.

use std::time::Duration;

use capstan::{Handler, JobContext, JobError};
use reqwest::header::RETRY_AFTER;
use serde::{Deserialize, Serialize};

use super::{KIND, SummarizeRequest};

/// The longest `Retry-After` honoured; a longer one is cut to this, so a
/// wrong header cannot park a document for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The job's args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentArgs {
    /// The document to process.
    pub document_id: String,
    /// The AI API's base URL (`POST {api_url}/v1/summarize`).
    pub api_url: String,
}

/// What the AI API returns for a document, kept as the job's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The document summarized.
    pub document_id: String,
    /// Its summary.
    pub summary: String,
}

/// Processes one document: asks the AI API for its summary.
#[derive(Debug, Clone)]
pub struct ProcessDocument {
    http: reqwest::Client,
}

impl ProcessDocument {
    /// A handler with its own HTTP client (connections are pooled across jobs).
    ///
    /// # Errors
    /// When the HTTP client cannot be built (the system's resolver
    /// configuration cannot be read).
    pub fn new() -> Result<Self, reqwest::Error> {
        // Linking Capstan builds reqwest on rustls with no provider of its
        // own: one is installed for the process first.
        capstan::install_tls();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent("capstan-examples/document_pipeline")
            .build()?;
        Ok(ProcessDocument { http })
    }
}

impl Handler for ProcessDocument {
    const KIND: &'static str = KIND;
    type Args = DocumentArgs;
    type Output = Summary;

    async fn run(&self, ctx: JobContext, args: DocumentArgs) -> Result<Summary, JobError> {
        let url = format!("{}/v1/summarize", args.api_url.trim_end_matches('/'));
        let request = self.http.post(&url).json(&SummarizeRequest {
            document_id: args.document_id.clone(),
        });
        tracing::debug!(document_id = %args.document_id, attempt = ctx.attempt(), %url, "calling the AI API");
        // Stop waiting as soon as the job is cancelled (by a user, or by its
        // timeout), instead of letting the runtime drop the call later.
        let response = tokio::select! {
            r = request.send() => r,
            () = ctx.cancelled() => {
                return Err(JobError::retryable("cancelled while waiting for the AI API"));
            }
        };
        let response = response.map_err(|e| {
            JobError::retryable(format!(
                "the AI API at {url} did not answer for document {}: {}",
                args.document_id,
                JobError::from(e).message()
            ))
        })?;
        let status = response.status();
        if status.is_success() {
            return response.json::<Summary>().await.map_err(|e| {
                JobError::retryable(format!(
                    "the AI API answered {status} with a body that is not a summary: {}",
                    JobError::from(e).message()
                ))
            });
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.text().await.unwrap_or_default();
        let detail: String = body.chars().take(200).collect();
        Err(error_for_status(status.as_u16(), retry_after, &detail))
    }
}

/// The error for a non-2xx answer `status` (see the module docs): 429 and
/// 5xx are retried, after `retry_after` when the API sent one; every other
/// status fails the job now. `detail` (the start of the body) goes into the
/// message kept in the job's attempt history.
pub fn error_for_status(status: u16, retry_after: Option<Duration>, detail: &str) -> JobError {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let message = format!("the AI API answered {status} {reason}: {detail}");
    match (status, retry_after) {
        (429 | 500..=599, Some(after)) => JobError::retry_after(message, after),
        (429 | 500..=599, None) => JobError::retryable(message),
        _ => JobError::permanent(message),
    }
}

/// `Retry-After` in seconds, capped at [`MAX_RETRY_AFTER`]. The HTTP-date
/// form is not parsed: the policy's backoff applies instead.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}
