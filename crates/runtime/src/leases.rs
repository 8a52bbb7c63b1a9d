//! The leases this node holds: every job it claimed and has not finished,
//! whether it waits in a producer's buffer or runs, each with the token that
//! stops it.
//!
//! Keyed by [`Lease`] (job and claim token), never by job id alone: should
//! one job ever be held twice here, the two executions cannot overwrite each
//! other's entry. A lease leaves the map when its job ends here (before the
//! finish is sent), so whatever is in the map is still `running` under this
//! node in the database — unless it was taken away. The heartbeat compares
//! the two and stops the handlers of jobs taken away (rescued while this node
//! was thought dead, or reclaimed by a successor under the same node id).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use capstan_core::{JobId, Lease};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Entry {
    cancel: CancellationToken,
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
                since: Instant::now(),
            },
        );
        cancel
    }

    /// The job of `lease` ended here (or went back to its queue).
    pub(crate) fn release(&self, lease: &Lease) {
        self.map().remove(lease);
    }

    /// A user asked to cancel job `id`: stop whatever this node holds of it.
    pub(crate) fn cancel_job(&self, id: JobId) {
        for (lease, e) in self.map().iter() {
            if lease.job_id == id && !e.cancel.is_cancelled() {
                tracing::info!(%lease, "cancelling job on request");
                e.cancel.cancel();
            }
        }
    }

    /// Stop the job of `lease`, if held here.
    pub(crate) fn cancel(&self, lease: &Lease, why: &str) {
        if let Some(e) = self.map().get(lease)
            && !e.cancel.is_cancelled()
        {
            tracing::info!(%lease, why, "stopping job");
            e.cancel.cancel();
        }
    }

    /// The database says this node holds exactly `held` (read after
    /// `asked_at`): stop every job held here since before then that is not
    /// among them — it was taken away. Returns how many.
    pub(crate) fn keep_only(&self, held: &BTreeSet<Lease>, asked_at: Instant) -> usize {
        let mut stopped = 0;
        for (lease, e) in self.map().iter() {
            if e.since < asked_at && !held.contains(lease) && !e.cancel.is_cancelled() {
                tracing::warn!(%lease, "this job was taken from this node (rescued, or reclaimed under its node id): stopping its handler; its finish will be refused");
                e.cancel.cancel();
                stopped += 1;
            }
        }
        stopped
    }

    /// Stop everything (this node lost its id to another process).
    pub(crate) fn cancel_all(&self) {
        for e in self.map().values() {
            e.cancel.cancel();
        }
    }

    /// How many leases are held.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}
