//! The leases this node holds: every job it claimed and has not finished,
//! whether it waits in a producer's buffer or runs, each with the token that
//! stops it.
//!
//! Keyed by [`Lease`] (job and claim token), never by job id alone: should
//! one job ever be held twice here, the two executions cannot overwrite each
//! other's entry. A lease leaves the map once its finish is with the
//! completer, so whatever is in the map is still `running` under this node
//! in the database — unless it was taken away. The heartbeat compares the
//! two both ways: it stops the handlers of jobs taken away (rescued while
//! this node was thought dead, or reclaimed by a successor under the same
//! node id), and hands back jobs the database says this node holds that it
//! does not know (a claim that committed but whose reply was lost to a cut
//! connection or a server crash), once two beats in a row saw them so.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use capstan_core::{JobId, Lease};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a job was told to stop here; it decides how the job ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// A user asked: the job ends `cancelled`.
    Cancelled,
    /// The database no longer has it running under this lease (rescued,
    /// reclaimed): nothing is written, it belongs to someone else.
    TakenAway,
    /// Another process took this node id over while this one still ran:
    /// the job goes back to its queue, its attempt given back.
    Replaced,
}

struct Entry {
    cancel: CancellationToken,
    reason: Option<StopReason>,
    since: Instant,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Leases {
    map: Mutex<HashMap<Lease, Entry>>,
}

impl Leases {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Lease, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hold `lease` from now; returns the token that stops its job.
    pub(crate) fn hold(&self, lease: Lease) -> CancellationToken {
        let cancel = CancellationToken::new();
        self.map().insert(
            lease,
            Entry {
                cancel: cancel.clone(),
                reason: None,
                since: Instant::now(),
            },
        );
        cancel
    }

    /// Why the job of `lease` was told to stop (the first reason given).
    pub(crate) fn reason(&self, lease: &Lease) -> Option<StopReason> {
        self.map().get(lease).and_then(|e| e.reason)
    }

    fn stop(e: &mut Entry, reason: StopReason) {
        e.reason.get_or_insert(reason);
        e.cancel.cancel();
    }

    /// The job of `lease` ended here (or went back to its queue).
    pub(crate) fn release(&self, lease: &Lease) {
        self.map().remove(lease);
    }

    /// A user asked to cancel job `id`: stop whatever this node holds of it.
    pub(crate) fn cancel_job(&self, id: JobId) {
        for (lease, e) in self.map().iter_mut() {
            if lease.job_id == id && !e.cancel.is_cancelled() {
                tracing::info!(%lease, "cancelling job on request");
                Self::stop(e, StopReason::Cancelled);
            }
        }
    }

    /// A user asked to cancel the job of `lease`: stop it, if held here.
    pub(crate) fn cancel(&self, lease: &Lease) {
        if let Some(e) = self.map().get_mut(lease)
            && !e.cancel.is_cancelled()
        {
            tracing::info!(%lease, "cancelling job on request");
            Self::stop(e, StopReason::Cancelled);
        }
    }

    /// The database says this node holds exactly `held` (read after
    /// `asked_at`): stop every job held here since before then that is not
    /// among them — it was taken away. Returns how many.
    pub(crate) fn keep_only(&self, held: &BTreeSet<Lease>, asked_at: Instant) -> usize {
        let mut stopped = 0;
        for (lease, e) in self.map().iter_mut() {
            if e.since < asked_at && !held.contains(lease) && !e.cancel.is_cancelled() {
                tracing::warn!(%lease, "this job was taken from this node (rescued, or reclaimed under its node id): stopping its handler");
                Self::stop(e, StopReason::TakenAway);
                stopped += 1;
            }
        }
        stopped
    }

    /// Of `held` (what the database says this node holds), the leases not
    /// held here.
    pub(crate) fn unknown(&self, held: &BTreeSet<Lease>) -> BTreeSet<Lease> {
        let map = self.map();
        held.iter()
            .filter(|l| !map.contains_key(*l))
            .cloned()
            .collect()
    }

    /// Stop everything and give it back (this node lost its id to another
    /// process).
    pub(crate) fn give_all_back(&self) {
        for e in self.map().values_mut() {
            Self::stop(e, StopReason::Replaced);
        }
    }

    /// How many leases are held.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use capstan_core::LeaseToken;

    use super::*;

    fn lease(id: i64) -> Lease {
        Lease {
            job_id: JobId(id),
            token: LeaseToken::generate(),
        }
    }

    #[test]
    fn a_released_lease_is_no_longer_held_nor_stopped() {
        let leases = Leases::default();
        let (a, b) = (lease(1), lease(2));
        let ta = leases.hold(a.clone());
        let tb = leases.hold(b.clone());
        assert_eq!(leases.len(), 2);
        leases.release(&a);
        assert_eq!(leases.len(), 1);
        // The database says nothing is held: only what is still here stops.
        let none = BTreeSet::new();
        assert_eq!(leases.keep_only(&none, Instant::now()), 1);
        assert!(!ta.is_cancelled() && tb.is_cancelled());
        assert_eq!(leases.reason(&b), Some(StopReason::TakenAway));
        assert_eq!(leases.reason(&a), None);
    }

    #[test]
    fn a_cancel_stops_only_its_lease_and_the_first_reason_stands() {
        let leases = Leases::default();
        let (a, again, other) = (lease(1), lease(1), lease(2));
        let ta = leases.hold(a.clone());
        let t_again = leases.hold(again.clone());
        let t_other = leases.hold(other.clone());
        leases.cancel(&a);
        assert!(ta.is_cancelled() && !t_again.is_cancelled() && !t_other.is_cancelled());
        assert_eq!(leases.reason(&a), Some(StopReason::Cancelled));
        // Taken away later: still a user's cancel, which decides how it ends.
        leases.keep_only(&BTreeSet::new(), Instant::now());
        assert_eq!(leases.reason(&a), Some(StopReason::Cancelled));
        // A cancel by job id reaches every lease of that job.
        let leases = Leases::default();
        let (ta, t_again) = (leases.hold(a.clone()), leases.hold(again.clone()));
        leases.cancel_job(JobId(1));
        assert!(ta.is_cancelled() && t_again.is_cancelled());
    }

    #[test]
    fn only_leases_held_before_the_question_can_be_taken_away() {
        let leases = Leases::default();
        let (old, young, kept) = (lease(1), lease(2), lease(3));
        let t_old = leases.hold(old.clone());
        let t_kept = leases.hold(kept.clone());
        let asked_at = Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let t_young = leases.hold(young.clone());
        let held: BTreeSet<Lease> = [kept.clone()].into();
        assert_eq!(leases.keep_only(&held, asked_at), 1);
        assert!(t_old.is_cancelled() && !t_kept.is_cancelled() && !t_young.is_cancelled());
        let stray = lease(4);
        let db: BTreeSet<Lease> = [kept, stray.clone()].into();
        assert_eq!(leases.unknown(&db), [stray].into());
        leases.give_all_back();
        assert!(t_young.is_cancelled());
        assert_eq!(leases.reason(&young), Some(StopReason::Replaced));
    }
}
