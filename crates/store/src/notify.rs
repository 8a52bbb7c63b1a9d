//! Notifications: hints, by topic, that something changed in the database,
//! so that whoever waits on it reacts within milliseconds instead of at its
//! next poll.
//!
//! A notification is only a hint over durable rows: losing one costs latency
//! (the polling fallback finds the change), never data. A receiver that may
//! have lost hints — it fell behind, the backend reconnected, or another
//! process wrote without saying what — gets [`Received::Missed`] and re-checks
//! everything it watches.
//!
//! Backends only carry a topic and a payload: PostgreSQL on channel
//! `capstan_<topic>` of its one LISTEN connection, SQLite through the
//! in-process hub (and its cross-process watcher, which can only say
//! `Missed`). The crate that owns a topic writes and parses its payloads; a
//! new topic adds a constant, never a change to a backend's listen code.

use std::fmt;

use capstan_core::JobId;
use tokio::sync::broadcast;

/// A named stream of notifications (`[a-z_]`, at most 40 bytes: it becomes
/// part of a PostgreSQL channel name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Topic(&'static str);

impl Topic {
    /// Jobs became available. Payload: comma-separated queue names, or `*`
    /// for "any queue" (see [`JobsHint`]).
    pub const JOBS: Topic = Topic::new("jobs");
    /// Requests to nodes. Payload: `cancel:<job id>` (see [`ControlHint`]).
    pub const CONTROL: Topic = Topic::new("control");

    /// A topic named `name`.
    ///
    /// # Panics
    /// When `name` is empty, longer than 40 bytes or not `[a-z_]` — a
    /// programming error caught at compile time when used in a `const`.
    pub const fn new(name: &'static str) -> Topic {
        let b = name.as_bytes();
        assert!(
            !b.is_empty() && b.len() <= 40,
            "a topic name has 1 to 40 bytes"
        );
        let mut i = 0;
        while i < b.len() {
            assert!(
                b[i].is_ascii_lowercase() || b[i] == b'_',
                "a topic name is [a-z_]"
            );
            i += 1;
        }
        Topic(name)
    }

    /// Its name.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The largest payload every backend carries (PostgreSQL's NOTIFY limit is
/// just under 8,000 bytes).
pub const MAX_PAYLOAD: usize = 7_000;

/// A hint on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What it is about.
    pub topic: Topic,
    /// Written and parsed by the topic's owner.
    pub payload: String,
}

impl Notification {
    /// A notification on `topic`.
    pub fn new(topic: Topic, payload: impl Into<String>) -> Self {
        Notification {
            topic,
            payload: payload.into(),
        }
    }

    /// Refuse a payload no backend can carry in full ([`MAX_PAYLOAD`]), the
    /// same on both backends (PostgreSQL's NOTIFY would fail the caller's
    /// whole transaction).
    ///
    /// # Errors
    /// [`crate::StoreError::Invalid`] naming the topic and the length.
    pub fn check(&self) -> crate::StoreResult<()> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(capstan_core::ValidationError::Payload {
                topic: self.topic.name(),
                len: self.payload.len(),
                max: MAX_PAYLOAD,
            }
            .into());
        }
        Ok(())
    }

    /// Jobs became available in these queues (`*` when the list would not
    /// fit in a payload); `None` for no queue.
    pub fn jobs_in<'a>(queues: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut payload = String::new();
        for q in queues {
            if !payload.is_empty() {
                payload.push(',');
            }
            payload.push_str(q);
        }
        if payload.is_empty() {
            return None;
        }
        if payload.len() > MAX_PAYLOAD {
            payload = "*".into();
        }
        Some(Notification::new(Topic::JOBS, payload))
    }

    /// Jobs may have become available in any queue.
    pub fn jobs_anywhere() -> Self {
        Notification::new(Topic::JOBS, "*")
    }

    /// A user asked to cancel running job `id`.
    pub fn cancel(id: JobId) -> Self {
        Notification::new(Topic::CONTROL, format!("cancel:{id}"))
    }
}

/// A [`Topic::JOBS`] payload, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobsHint<'a> {
    /// These queues got available jobs.
    Queues(Vec<&'a str>),
    /// Any queue may have.
    Any,
}

impl<'a> JobsHint<'a> {
    /// Parse a payload (an empty or `*` payload means any queue).
    pub fn parse(payload: &'a str) -> Self {
        if payload.is_empty() || payload == "*" {
            JobsHint::Any
        } else {
            JobsHint::Queues(payload.split(',').collect())
        }
    }
}

/// A [`Topic::CONTROL`] payload, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlHint {
    /// Stop the handler of this job, if it runs here.
    Cancel(JobId),
}

impl ControlHint {
    /// Parse a payload; `None` for one this version does not know.
    pub fn parse(payload: &str) -> Option<Self> {
        let id = payload.strip_prefix("cancel:")?.parse().ok()?;
        Some(ControlHint::Cancel(JobId(id)))
    }
}

/// What a receiver gets: complete by design (a hint, or word that hints
/// were lost), so not `#[non_exhaustive]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A hint on one of the receiver's topics.
    Notification(Notification),
    /// Hints may have been lost (or another process changed something
    /// without saying what): re-check everything watched.
    Missed,
}

/// The sending side, shared by everything in a process that produces hints.
#[derive(Debug, Clone)]
pub struct NotificationHub {
    tx: broadcast::Sender<Received>,
}

impl NotificationHub {
    /// A hub whose receivers buffer up to 1,024 hints before they collapse
    /// to [`Received::Missed`].
    pub fn new() -> Self {
        NotificationHub {
            tx: broadcast::channel(1024).0,
        }
    }

    /// Send a hint to every receiver of its topic (none listening is fine).
    pub fn send(&self, n: Notification) {
        let _ = self.tx.send(Received::Notification(n));
    }

    /// Tell every receiver that hints may have been lost.
    pub fn missed(&self) {
        let _ = self.tx.send(Received::Missed);
    }

    /// A receiver of the hints on `topics` sent from now on (and of every
    /// [`Received::Missed`]).
    pub fn subscribe(&self, topics: &[Topic]) -> Notifications {
        Notifications {
            rx: self.tx.subscribe(),
            topics: topics.to_vec(),
        }
    }
}

impl Default for NotificationHub {
    fn default() -> Self {
        Self::new()
    }
}

/// The receiving side, for a set of topics.
#[derive(Debug)]
pub struct Notifications {
    rx: broadcast::Receiver<Received>,
    topics: Vec<Topic>,
}

impl Notifications {
    /// The next hint on this receiver's topics; `None` once the store is gone.
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            match self.rx.recv().await {
                Ok(Received::Notification(n)) if !self.topics.contains(&n.topic) => continue,
                Ok(r) => return Some(r),
                Err(broadcast::error::RecvError::Lagged(_)) => return Some(Received::Missed),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The topics it receives.
    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_payloads_round_trip_and_overflow_to_any() {
        let n = Notification::jobs_in(["a", "b"]).unwrap();
        assert_eq!(n.payload, "a,b");
        assert_eq!(
            JobsHint::parse(&n.payload),
            JobsHint::Queues(vec!["a", "b"])
        );
        let long = "q".repeat(MAX_PAYLOAD);
        let n = Notification::jobs_in([long.as_str(), "b"]).unwrap();
        assert_eq!(JobsHint::parse(&n.payload), JobsHint::Any);
        assert_eq!(Notification::jobs_in([]), None);
        assert_eq!(JobsHint::parse(""), JobsHint::Any);
    }

    #[test]
    fn control_payloads_parse_and_unknown_ones_are_ignored() {
        let n = Notification::cancel(JobId(42));
        assert_eq!(
            ControlHint::parse(&n.payload),
            Some(ControlHint::Cancel(JobId(42)))
        );
        assert_eq!(ControlHint::parse("pause:1"), None);
        assert_eq!(ControlHint::parse("cancel:x"), None);
    }

    #[tokio::test]
    async fn receivers_get_only_their_topics_and_every_missed() {
        let hub = NotificationHub::new();
        let mut jobs = hub.subscribe(&[Topic::JOBS]);
        hub.send(Notification::cancel(JobId(1)));
        hub.send(Notification::jobs_in(["a"]).unwrap());
        hub.missed();
        assert_eq!(
            jobs.recv().await,
            Some(Received::Notification(
                Notification::jobs_in(["a"]).unwrap()
            ))
        );
        assert_eq!(jobs.recv().await, Some(Received::Missed));
    }

    #[test]
    #[should_panic(expected = "[a-z_]")]
    fn a_topic_name_outside_the_channel_alphabet_is_refused() {
        let _ = Topic::new("Jobs-2");
    }
}
