//! Push queues: every job of the queue, whatever its kind, is POSTed to a
//! URL, signed per Standard Webhooks, and the reply decides what happens —
//! [`Verdict`]'s table, which a pull worker's `fail` with a `status` follows
//! too:
//!
//! | reply | the job |
//! |---|---|
//! | 2xx | completed; a JSON body is its result (text: a string) |
//! | 429, 502, 503, 504 | retried after `Retry-After` (at most `retry_after_cap`), else the backoff |
//! | other 5xx, 3xx (redirects are not followed), a timeout, no connection | retried with the backoff |
//! | 410 | the target is disabled on this node: nothing more is pushed to it, and its jobs wait (snoozed, attempts kept) until the configuration is fixed and the node restarted |
//! | other 4xx | failed for good |
//!
//! The status and the start of the body go into the attempt history. A push
//! runs as a handler on the node's executor, under the queue's concurrency
//! and the job's timeout: no thread per request.
//!
//! The request: `POST push_url`, `content-type: application/json`, body
//! `{"id", "kind", "queue", "args", "attempt", "max_attempts"}`; headers `webhook-id: job-<id>` (the same for every
//! attempt: the receiver's idempotency key), `webhook-timestamp` (Unix
//! seconds of this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256
//! of "<id>.<timestamp>.<body>">`, one per configured secret (rotation).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{JobContext, JobError, RuntimeError, Verdict};

/// `[queues.NAME]` of a push queue in `capstan.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Where each job is POSTed (`http://` or `https://`).
    pub push_url: String,
    /// A push that has not answered after this long is retried (1 s to 30 min).
    #[serde(default = "default_timeout", with = "capstan_core::humantime_serde")]
    pub push_timeout: Duration,
    /// Pushes in flight at once per node (the queue's concurrency).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Standard Webhooks secrets (`whsec_` + base64 of 24 to 64 bytes), one
    /// signature each: list the new one first to rotate.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secret: Vec<String>,
    /// The longest `Retry-After` honoured.
    #[serde(default = "default_cap", with = "capstan_core::humantime_serde")]
    pub retry_after_cap: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_concurrency() -> usize {
    10
}
fn default_cap() -> Duration {
    Duration::from_secs(3600)
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl PushConfig {
    /// A push queue to `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        PushConfig {
            push_url: url.into(),
            push_timeout: default_timeout(),
            concurrency: default_concurrency(),
            secret: Vec::new(),
            retry_after_cap: default_cap(),
        }
    }

    /// Check every field.
    ///
    /// # Errors
    /// [`RuntimeError::Config`] naming the field.
    pub fn validate(&self, queue: &str) -> Result<(), RuntimeError> {
        let bad = |m: String| Err(RuntimeError::Config(format!("queues.{queue}: {m}")));
        let url = self.push_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            return bad(format!(
                "push_url {url:?} must be an http:// or https:// URL"
            ));
        }
        if self.push_timeout < Duration::from_secs(1)
            || self.push_timeout > Duration::from_secs(1800)
        {
            return bad(format!(
                "push_timeout {:?} must be between 1s and 30m",
                self.push_timeout
            ));
        }
        if self.concurrency == 0 || self.concurrency > 100_000 {
            return bad(format!(
                "concurrency {} must be between 1 and 100000",
                self.concurrency
            ));
        }
        for s in &self.secret {
            if decode_secret(s).is_none() {
                return bad("secret must be `whsec_` followed by the base64 of 24 to 64 random bytes (e.g. `echo whsec_$(openssl rand -base64 32)`)".into());
            }
        }
        if self.retry_after_cap > capstan_core::limits::MAX_DELAY {
            return bad("retry_after_cap is at most 100 years".into());
        }
        Ok(())
    }
}

fn decode_secret(s: &str) -> Option<Vec<u8>> {
    let raw = s.strip_prefix("whsec_")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    (24..=64).contains(&bytes.len()).then_some(bytes)
}

/// The signature header value for `body` sent as `id` at `timestamp`.
pub fn sign(secrets: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        // (HMAC takes a key of any length: `new_from_slice` never fails.)
        .filter_map(|key| hmac::Hmac::<sha2::Sha256>::new_from_slice(key).ok())
        .map(|mut mac| {
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            let sig = mac.finalize().into_bytes();
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(sig)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Make ring rustls's process-wide crypto provider, as sqlx's TLS uses: the
/// workspace builds reqwest on rustls without a provider of its own (no
/// second crypto stack), so every process that builds an HTTP client calls
/// this first (the `capstan` binary does at start; a second call is a
/// no-op).
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// One push target, shared by the pushes of its queue.
#[derive(Debug)]
pub(crate) struct Target {
    queue: String,
    config: PushConfig,
    secrets: Vec<Vec<u8>>,
    http: reqwest::Client,
    disabled: AtomicBool,
}

impl Target {
    pub(crate) fn new(queue: &str, config: PushConfig) -> Result<Arc<Target>, RuntimeError> {
        config.validate(queue)?;
        install_tls();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.push_timeout)
            .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                RuntimeError::Config(format!("queues.{queue}: cannot build the HTTP client: {e}"))
            })?;
        Ok(Arc::new(Target {
            queue: queue.to_owned(),
            secrets: config
                .secret
                .iter()
                .filter_map(|s| decode_secret(s))
                .collect(),
            config,
            http,
            disabled: AtomicBool::new(false),
        }))
    }

    /// Push one job; the reply says what becomes of it (see the module docs).
    pub(crate) async fn push(
        self: Arc<Self>,
        ctx: JobContext,
        args: Value,
    ) -> Result<Value, JobError> {
        if self.disabled.load(Ordering::Acquire) {
            return Err(JobError::snooze(DISABLED_SNOOZE));
        }
        let body = serde_json::to_vec(&json!({
            "id": ctx.job_id(),
            "kind": ctx.kind(),
            "queue": ctx.queue(),
            "args": args,
            "attempt": ctx.attempt(),
            "max_attempts": ctx.max_attempts(),
        }))
        .map_err(|e| JobError::permanent(format!("the job cannot be sent as JSON: {e}")))?;
        let id = format!("job-{}", ctx.job_id());
        let timestamp = chrono::Utc::now().timestamp();
        let mut req = self
            .http
            .post(&self.config.push_url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string());
        if !self.secrets.is_empty() {
            req = req.header(
                "webhook-signature",
                sign(&self.secrets, &id, timestamp, &body),
            );
        }
        let res = tokio::select! {
            r = req.body(body).send() => r,
            () = ctx.cancelled() => return Err(JobError::retryable("stopped while pushing (cancelled or shutting down)")),
        };
        let res = match res {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(JobError::retryable(format!(
                    "push to {} timed out after {:?}",
                    self.config.push_url, self.config.push_timeout
                )));
            }
            Err(e) => {
                return Err(JobError::retryable(format!(
                    "push to {} failed: {e}",
                    self.config.push_url
                )));
            }
        };
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = res.text().await.unwrap_or_default();
        let snippet: String = text.chars().take(200).collect();
        let said = |what: &str| format!("push target answered {status} ({what}): {snippet}");
        match Verdict::of(status) {
            Verdict::Complete => Ok(if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            }),
            Verdict::RetryLater => Err(match retry_after {
                Some(d) => {
                    JobError::retry_after(said("retry later"), d.min(self.config.retry_after_cap))
                }
                None => JobError::retryable(said("retry later")),
            }),
            Verdict::Gone => {
                self.disabled.store(true, Ordering::Release);
                tracing::error!(queue = %self.queue, url = %self.config.push_url, "the push target answered 410 Gone: it is disabled on this node; its jobs wait until [queues.{}] is fixed and the node restarted", self.queue);
                Err(JobError::snooze(DISABLED_SNOOZE))
            }
            Verdict::Fail => Err(JobError::permanent(said("refused"))),
            Verdict::Retry if (300..400).contains(&status) => {
                Err(JobError::retryable(said("redirects are not followed")))
            }
            Verdict::Retry => Err(JobError::retryable(said("server error"))),
        }
    }
}

impl crate::handler::ErasedHandler for Target {
    fn call(self: Arc<Self>, ctx: JobContext, args: Value) -> crate::handler::HandlerFuture {
        Box::pin(self.push(ctx, args))
    }
}

/// A job of a disabled target waits this long before it is looked at again.
const DISABLED_SNOOZE: Duration = Duration::from_secs(300);

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(s) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_standard_webhooks_one() {
        // The Standard Webhooks specification's example.
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_bad_configs_are_refused() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("soon"), None);
        let later = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(80) && d <= Duration::from_secs(90));
        assert!(PushConfig::new("ftp://x").validate("q").is_err());
        let mut c = PushConfig::new("https://example.com/hook");
        assert!(c.validate("q").is_ok());
        c.secret = vec!["not-a-secret".into()];
        assert!(c.validate("q").unwrap_err().to_string().contains("whsec_"));
        c.secret = vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()];
        assert!(c.validate("q").is_ok());
    }
}
