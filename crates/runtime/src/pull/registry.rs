//! The pull workers this process has heard from, and when it last wrote
//! their rows: a worker's calls beat its row at most once per beat period,
//! and at once when it names a queue or a kind its row does not list yet
//! (so the parker never sets aside a job a worker has just asked for).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use capstan_core::{ANY_KIND, Timestamp};

/// What this process wrote in a worker's row, and when.
#[derive(Debug)]
struct Seen {
    queues: BTreeSet<String>,
    kinds: BTreeSet<String>,
    beaten: Option<Timestamp>,
}

/// The workers heard from.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    seen: Mutex<HashMap<String, Seen>>,
}

/// The row to write for a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) queues: Vec<String>,
    pub(crate) kinds: Vec<String>,
}

impl Registry {
    /// The row to write for `worker` at `now`, if it needs a beat: it is
    /// new here, it names a queue or kind its row lacks, or its last beat is
    /// older than `every`. `kinds: None` means any kind.
    pub(crate) fn due(
        &self,
        worker: &str,
        queues: &[&str],
        kinds: Option<&[String]>,
        now: Timestamp,
        every: Duration,
    ) -> Option<Row> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let forget_after = every * 12;
        seen.retain(|_, s| {
            s.beaten
                .is_none_or(|at| (now - at).to_std().unwrap_or_default() < forget_after)
        });
        let s = seen.entry(worker.to_owned()).or_insert_with(|| Seen {
            queues: BTreeSet::new(),
            kinds: BTreeSet::new(),
            beaten: None,
        });
        let mut grew = false;
        for q in queues {
            grew |= s.queues.insert((*q).to_owned());
        }
        match kinds {
            None => grew |= s.kinds.insert(ANY_KIND.to_owned()),
            Some(kinds) => {
                for k in kinds {
                    grew |= s.kinds.insert(k.clone());
                }
            }
        }
        let stale = s
            .beaten
            .is_none_or(|at| (now - at).to_std().unwrap_or_default() >= every);
        if !grew && !stale {
            return None;
        }
        let kinds = if s.kinds.contains(ANY_KIND) {
            vec![ANY_KIND.to_owned()]
        } else {
            s.kinds.iter().cloned().collect()
        };
        Some(Row {
            queues: s.queues.iter().cloned().collect(),
            kinds,
        })
    }

    /// `worker`'s row was written at `now`.
    pub(crate) fn beaten(&self, worker: &str, now: Timestamp) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = seen.get_mut(worker) {
            s.beaten = Some(now);
        }
    }

    /// Whether this process has heard from `worker` lately.
    pub(crate) fn knows(&self, worker: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.contains_key(worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> Timestamp {
        chrono::Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_worker_is_beaten_when_new_when_it_names_more_and_once_per_period() {
        let r = Registry::default();
        let every = Duration::from_secs(10);
        let k = vec!["a".to_owned()];
        let row = r.due("w", &["q"], Some(&k), at(0), every).unwrap();
        assert_eq!(row.kinds, vec!["a"]);
        r.beaten("w", at(0));
        assert_eq!(r.due("w", &["q"], Some(&k), at(5), every), None);
        let more = vec!["b".to_owned()];
        let row = r.due("w", &["q"], Some(&more), at(6), every).unwrap();
        assert_eq!(row.kinds, vec!["a", "b"], "the kinds add up");
        r.beaten("w", at(6));
        let row = r.due("w", &["q2"], Some(&k), at(7), every).unwrap();
        assert_eq!(row.queues, vec!["q", "q2"]);
        r.beaten("w", at(7));
        assert!(
            r.due("w", &["q"], Some(&k), at(17), every).is_some(),
            "stale"
        );
        let row = r.due("w", &["q"], None, at(18), every).unwrap();
        assert_eq!(row.kinds, vec![ANY_KIND], "any kind covers the rest");
    }

    #[test]
    fn a_beat_that_failed_is_due_again_and_silent_workers_are_forgotten() {
        let r = Registry::default();
        let every = Duration::from_secs(10);
        assert!(r.due("w", &["q"], None, at(0), every).is_some());
        // Not marked beaten (the write failed): due again at once.
        assert!(r.due("w", &["q"], None, at(1), every).is_some());
        r.beaten("w", at(1));
        assert!(r.knows("w"));
        assert!(r.due("other", &["q"], None, at(1000), every).is_some());
        assert!(!r.knows("w"), "silent for twelve periods");
    }
}
