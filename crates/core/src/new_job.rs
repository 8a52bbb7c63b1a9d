//! A job to enqueue: a builder with the options of the brief, validated before
//! anything is written.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::limits::{self, MAX_ARGS_BYTES, MAX_DELAY, MAX_TIMEOUT};
use crate::{Timestamp, ValidationError};

/// The queue a job goes to when none is named.
pub const DEFAULT_QUEUE: &str = "default";

/// In a node's list of kinds, "any kind": what a pull worker that names no
/// kinds registers. No job may have this kind.
pub const ANY_KIND: &str = "*";

/// A job to enqueue. Build one with [`NewJob::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// Which handler runs it.
    pub kind: String,
    /// The handler's input (JSON).
    #[serde(default)]
    pub args: Value,
    /// The queue it waits in; `default` when empty.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Higher runs first (default 0).
    #[serde(default)]
    pub priority: i16,
    /// Run no earlier than this; `None` = now.
    #[serde(default)]
    pub run_at: Option<Timestamp>,
    /// Run no earlier than this long after enqueue (ignored when `run_at` is set).
    #[serde(default, with = "duration_ms_opt", rename = "delay_ms")]
    pub delay: Option<Duration>,
    /// Attempts allowed; `None` = the retry policy of its kind or queue.
    #[serde(default)]
    pub max_attempts: Option<i32>,
    /// Per-attempt timeout; `None` = its queue's.
    #[serde(default, with = "duration_ms_opt", rename = "timeout_ms")]
    pub timeout: Option<Duration>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// At most one job per key while retained; a known key returns the existing job.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// At most one not-yet-started job per key; a second enqueue coalesces into it.
    #[serde(default)]
    pub dedupe_key: Option<String>,
}

fn default_queue() -> String {
    DEFAULT_QUEUE.to_owned()
}

impl NewJob {
    /// A job of `kind` with `args`, in the default queue, runnable now.
    pub fn new(kind: impl Into<String>, args: Value) -> Self {
        NewJob {
            kind: kind.into(),
            args,
            queue: default_queue(),
            priority: 0,
            run_at: None,
            delay: None,
            max_attempts: None,
            timeout: None,
            tags: Vec::new(),
            idempotency_key: None,
            dedupe_key: None,
        }
    }

    /// Put it in `queue`.
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Set its priority (higher runs first).
    pub fn with_priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Run it no earlier than `at`.
    pub fn with_run_at(mut self, at: Timestamp) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Run it no earlier than `delay` after enqueue.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Allow it `n` attempts.
    pub fn with_max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Cancel an attempt that runs longer than `timeout` without a heartbeat.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Label it.
    pub fn with_tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// At most one job per `key` while retained.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// At most one not-yet-started job per `key`.
    pub fn with_dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Check every field; the first bad one is reported. Bounds (see
    /// [`crate::limits`]): timeout more than zero and at most 1 year; delay at
    /// most 100 years; `run_at` between 1970 and 100 years from now; args at
    /// most 1 MiB as JSON, nested at most 100 deep, without U+0000; at most
    /// 100 tags of 1 to 200 characters.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the field and what it accepts.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.kind.is_empty() || self.kind.chars().count() > 200 || self.kind == ANY_KIND {
            return Err(ValidationError::Kind(self.kind.clone()));
        }
        validate_queue(&self.queue)?;
        if let Some(n) = self.max_attempts
            && !(1..=1000).contains(&n)
        {
            return Err(ValidationError::MaxAttempts(n));
        }
        if let Some(t) = self.timeout
            && (t.is_zero() || t > MAX_TIMEOUT)
        {
            return Err(ValidationError::Timeout(t));
        }
        if let Some(d) = self.delay {
            limits::check_duration("delay", d, MAX_DELAY)?;
        }
        if let Some(at) = self.run_at {
            let latest =
                chrono::Utc::now() + chrono::Duration::from_std(MAX_DELAY).unwrap_or_default();
            if at.timestamp() < 0 || at > latest {
                return Err(ValidationError::RunAt(at));
            }
        }
        for (field, key) in [
            ("idempotency_key", &self.idempotency_key),
            ("dedupe_key", &self.dedupe_key),
        ] {
            if let Some(k) = key
                && (k.is_empty() || k.chars().count() > 500)
            {
                return Err(ValidationError::Key { field });
            }
        }
        if self.tags.len() > 100
            || self
                .tags
                .iter()
                .any(|t| t.is_empty() || t.chars().count() > 200)
        {
            return Err(ValidationError::Tags);
        }
        limits::check_json("args", &self.args, MAX_ARGS_BYTES, true)
    }
}

/// Check a queue name: 1 to 100 characters from `[A-Za-z0-9_.:-]`.
///
/// # Errors
/// [`ValidationError::Queue`] when the name does not fit.
pub fn validate_queue(queue: &str) -> Result<(), ValidationError> {
    let ok = !queue.is_empty()
        && queue.len() <= 100
        && queue
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Queue(queue.to_owned()))
    }
}

mod duration_ms_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_plain_job_is_valid() {
        NewJob::new("email.send", json!({"to": "a@b"}))
            .validate()
            .unwrap();
    }

    #[test]
    fn bad_fields_are_named() {
        let err = NewJob::new("", json!(null)).validate().unwrap_err();
        assert!(err.to_string().contains("kind"));
        let err = NewJob::new("k", json!(null))
            .with_queue("has space")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("queue"));
        let err = NewJob::new("k", json!(null))
            .with_max_attempts(0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("max_attempts"));
        let err = NewJob::new("k", json!(null))
            .with_dedupe_key("")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("dedupe_key"));
    }

    #[test]
    fn durations_and_times_past_their_bounds_are_refused() {
        let job = || NewJob::new("k", json!(null));
        for bad in [
            Duration::ZERO,
            Duration::MAX,
            MAX_TIMEOUT + Duration::from_secs(1),
        ] {
            let err = job().with_timeout(bad).validate().unwrap_err();
            assert!(
                matches!(err, ValidationError::Timeout(t) if t == bad),
                "{err}"
            );
        }
        job().with_timeout(MAX_TIMEOUT).validate().unwrap();
        let err = job().with_delay(Duration::MAX).validate().unwrap_err();
        assert!(err.to_string().contains("delay"), "{err}");
        job().with_delay(MAX_DELAY).validate().unwrap();
        let far = chrono::Utc::now() + chrono::Duration::days(101 * 365);
        assert!(matches!(
            job().with_run_at(far).validate(),
            Err(ValidationError::RunAt(_))
        ));
        let before_1970 = chrono::DateTime::from_timestamp(-1, 0).unwrap();
        assert!(job().with_run_at(before_1970).validate().is_err());
        job()
            .with_run_at(chrono::DateTime::from_timestamp(0, 0).unwrap())
            .validate()
            .unwrap();
    }

    #[test]
    fn args_and_tags_past_their_bounds_are_refused() {
        let err = NewJob::new("k", json!({"s": "a\u{0}b"}))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("args"), "{err}");
        let big = json!("x".repeat(MAX_ARGS_BYTES));
        assert!(NewJob::new("k", big).validate().is_err());
        assert!(
            NewJob::new("k", json!(null))
                .with_tags([""])
                .validate()
                .is_err()
        );
        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        assert!(
            NewJob::new("k", json!(null))
                .with_tags(many)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn every_bound_accepts_its_limit_and_refuses_one_more() {
        let job = || NewJob::new("k", json!(null));
        let ok = |j: NewJob| j.validate().unwrap();
        let bad = |j: NewJob| assert!(j.validate().is_err(), "{j:?}");
        ok(NewJob::new("k".repeat(200), json!(null)));
        bad(NewJob::new("k".repeat(201), json!(null)));
        ok(job().with_queue("q".repeat(100)));
        bad(job().with_queue("q".repeat(101)));
        ok(job().with_max_attempts(1));
        ok(job().with_max_attempts(1000));
        bad(job().with_max_attempts(1001));
        ok(job().with_timeout(Duration::from_millis(1)));
        bad(job().with_timeout(MAX_TIMEOUT + Duration::from_millis(1)));
        bad(job().with_delay(MAX_DELAY + Duration::from_millis(1)));
        ok(job().with_idempotency_key("i".repeat(500)));
        bad(job().with_idempotency_key("i".repeat(501)));
        ok(job().with_dedupe_key("d".repeat(500)));
        bad(job().with_dedupe_key("d".repeat(501)));
        ok(job().with_tags(["t".repeat(200)]));
        bad(job().with_tags(["t".repeat(201)]));
        ok(job().with_tags((0..100).map(|i| i.to_string())));
        let soon = chrono::Utc::now() + chrono::Duration::days(99 * 365);
        ok(job().with_run_at(soon));
    }

    #[test]
    fn a_batch_line_reads_its_options_in_milliseconds() {
        // `capstan enqueue --batch` reads these lines.
        let job: NewJob = serde_json::from_value(json!({
            "kind": "k", "delay_ms": 1500, "timeout_ms": 2000
        }))
        .unwrap();
        assert_eq!(job.queue, DEFAULT_QUEUE);
        assert_eq!(job.delay, Some(Duration::from_millis(1500)));
        assert_eq!(job.timeout, Some(Duration::from_millis(2000)));
        let plain: NewJob = serde_json::from_value(json!({"kind": "k"})).unwrap();
        assert_eq!(plain, NewJob::new("k", Value::Null));
        let back: NewJob = serde_json::from_value(serde_json::to_value(&job).unwrap()).unwrap();
        assert_eq!(back, job);
    }
}
