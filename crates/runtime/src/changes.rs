//! Change hints: "these jobs changed" (claimed, finished, given back,
//! rescued, cancelled, retried, progress), for whoever shows jobs live — the
//! API's event streams and its long-polled waits, on any node.
//!
//! They cost nothing while nobody watches: a process sends them only while
//! some process has said, on [`WATCH`], that it has live streams open (the
//! API repeats it every [`WATCH_EVERY`]; it holds for [`WATCH_FOR`]). A hint
//! is sent after the write that made the change, in a notification of its
//! own — never inside the write's transaction, so a commit of claims or
//! finishes never waits on PostgreSQL's notification lock. Like every
//! notification it is only a hint: a watcher re-reads the jobs it names,
//! and polls now and then for what a hint may have missed (a node that has
//! not heard the latest `WATCH` yet, a reconnect).

use std::sync::Mutex;
use std::time::Duration;

use capstan_core::JobId;
use capstan_store::{MAX_PAYLOAD, Notification, Store, Topic};
use tokio::time::Instant;

/// Jobs changed. Payload: their ids, comma-separated.
pub const CHANGES: Topic = Topic::new("changes");

/// Someone shows jobs live: send [`CHANGES`] hints. Payload: empty.
pub const WATCH: Topic = Topic::new("watch");

/// How long one [`WATCH`] makes a process send hints.
pub const WATCH_FOR: Duration = Duration::from_secs(15);

/// How often a watcher repeats [`WATCH`] while it watches.
pub const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Whether this process sends change hints, and the sending.
#[derive(Debug, Default)]
pub struct Hints {
    watched_until: Mutex<Option<Instant>>,
}

impl Hints {
    /// A [`WATCH`] was heard: send hints for a while.
    pub fn watched(&self) {
        let mut until = self.watched_until.lock().unwrap_or_else(|e| e.into_inner());
        *until = Some(Instant::now() + WATCH_FOR);
    }

    /// Whether someone watches.
    pub fn is_watched(&self) -> bool {
        let until = self.watched_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|t| t > Instant::now())
    }

    /// Say that `ids` changed, if someone watches; `always` sends even if
    /// not (an operator's rare action, from a process that may not listen).
    /// Fire and forget: a hint that cannot be sent is only a hint.
    pub fn send<S: Store>(&self, store: &S, ids: impl IntoIterator<Item = JobId>, always: bool) {
        if !always && !self.is_watched() {
            return;
        }
        for payload in payloads(ids) {
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.notify(Notification::new(CHANGES, payload)).await {
                    tracing::debug!(error = %e, "a change hint was not sent");
                }
            });
        }
    }
}

/// The payloads that carry `ids`, each within [`MAX_PAYLOAD`].
fn payloads(ids: impl IntoIterator<Item = JobId>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for id in ids {
        let s = id.0.to_string();
        if !cur.is_empty() && cur.len() + 1 + s.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(&s);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The ids of a [`CHANGES`] payload (what does not parse is skipped).
pub fn parse(payload: &str) -> Vec<JobId> {
    payload
        .split(',')
        .filter_map(|s| s.trim().parse().ok().map(JobId))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_in_payloads_that_fit() {
        let ids: Vec<JobId> = (1_000_000_000..1_000_002_000).map(JobId).collect();
        let ps = payloads(ids.clone());
        assert!(ps.len() > 1 && ps.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: Vec<JobId> = ps.iter().flat_map(|p| parse(p)).collect();
        assert_eq!(back, ids);
        assert!(payloads([]).is_empty());
        assert_eq!(parse("1,x,3"), vec![JobId(1), JobId(3)]);
    }

    #[tokio::test]
    async fn a_watch_holds_for_a_while() {
        let h = Hints::default();
        assert!(!h.is_watched());
        h.watched();
        assert!(h.is_watched());
    }
}
