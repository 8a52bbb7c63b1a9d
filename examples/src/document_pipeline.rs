//! Seed 001: a document pipeline whose jobs call an external AI API.
//!
//! The seed is a French engineering note from a Next.js + Supabase app. Its
//! three TypeScript workers (`process-document-jobs.ts` and friends) each had
//! to grow, by hand:
//!
//! - an atomic claim (`UPDATE … WHERE status = 'pending'`, then check that a
//!   row changed) so two workers never process one document;
//! - a 5-minute job timeout, so a stuck job is marked failed instead of
//!   hanging forever;
//! - idle polling that starts at 2 s, grows ×1.5 to 30 s and resets on work;
//! - retries of the OpenAI calls: 3 attempts, 2 s → 4 s → 8 s, on 429 and
//!   5xx, never on 401/403.
//!
//! With Capstan, each of those is configuration or the runtime's job:
//!
//! | the seed's hand-written code | here |
//! |---|---|
//! | `UPDATE … WHERE status = 'pending'` | the store's claim (`FOR UPDATE SKIP LOCKED` on PostgreSQL), fenced finishes |
//! | `JOB_TIMEOUT_MS = 5 min` | [`config`]: `default_timeout` = [`JOB_TIMEOUT`]; the handler is cancelled when it runs out |
//! | `BASE_POLL_INTERVAL_MS` … `BACKOFF_MULTIPLIER` | the runtime's defaults (2 s → 30 s ×1.5), only a fallback behind wake-ups |
//! | `openaiWithRetry` | [`retry_policy`] for [`KIND`], and [`ProcessDocument`] mapping each HTTP answer to an error class |
//!
//! One decision differs from the seed: its "3 tentatives maximum" with
//! delays 2 s, 4 s and 8 s needs four attempts to use all three delays, so
//! the policy here is 4 attempts in all (the first run and 3 retries). A 429
//! or 5xx that carries `Retry-After: <seconds>` is retried after exactly that
//! long instead of the backoff (the API knows best when it will take calls
//! again); without the header, the backoff applies.
//!
//! The AI API here is [`FakeAiApi`], a local HTTP server whose answers are
//! scripted per document, so the demo and the tests run with no network and
//! no API key.

mod fake_api;
mod handler;

use std::time::Duration;

use capstan::{Config, Handler, NewJob, QueueConfig, RetryPolicy};

pub use fake_api::{FakeAiApi, Reply, SummarizeRequest, seed_scripts};
pub use handler::{DocumentArgs, MAX_RETRY_AFTER, ProcessDocument, Summary, error_for_status};

/// The kind of the document-processing jobs.
pub const KIND: &str = "documents.process";
/// The queue they wait in.
pub const QUEUE: &str = "documents";
/// Attempts a document gets in all: the first run and 3 retries.
pub const MAX_ATTEMPTS: i32 = 4;
/// The delay after the first failed attempt; each next one doubles (2, 4, 8 s).
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(2);
/// How long one attempt may run before it is cancelled (seed 001: 5 minutes).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Documents processed at once per node.
pub const CONCURRENCY: usize = 16;

/// The retry policy of [`KIND`]: [`MAX_ATTEMPTS`] attempts, waiting 2 s, 4 s,
/// then 8 s between them, with no jitter.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::exponential(MAX_ATTEMPTS, FIRST_RETRY_DELAY, 2.0)
}

/// The configuration of a client and node running this pipeline: the
/// [`QUEUE`] queue, [`retry_policy`] for [`KIND`], a [`JOB_TIMEOUT`] per
/// attempt, and the default idle polling (2 s → 30 s, ×1.5).
pub fn config() -> Config {
    let mut config = Config {
        queues: vec![QueueConfig::new(QUEUE).with_concurrency(CONCURRENCY)],
        default_timeout: JOB_TIMEOUT,
        ..Config::default()
    };
    config.retry.by_kind.insert(KIND.to_owned(), retry_policy());
    config
}

/// The job that processes `document_id` by calling the AI API at `api_url`
/// (typed: its kind and args are [`ProcessDocument`]'s).
///
/// # Errors
/// Never in practice (the args are two strings); typed as the handler's
/// `job` is.
pub fn job(document_id: &str, api_url: &str) -> Result<NewJob, capstan::RuntimeError> {
    let args = DocumentArgs {
        document_id: document_id.to_owned(),
        api_url: api_url.to_owned(),
    };
    Ok(ProcessDocument::job(&args)?
        .with_queue(QUEUE)
        .with_tags([format!("document:{document_id}")]))
}
