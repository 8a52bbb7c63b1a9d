//! What a module's reads came to on this node, counted as they happen.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters of one module on one node.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) l1_hits: AtomicU64,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) stale_if_error: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) fenced: AtomicU64,
    pub(crate) timeouts: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A module's counters on this node, since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModuleStats {
    /// The module.
    pub module: String,
    /// Reads answered fresh from this node's memory.
    pub l1_hits: u64,
    /// Reads answered fresh from the database.
    pub l2_hits: u64,
    /// Reads that found nothing fresh or servable and waited for a refresh.
    pub misses: u64,
    /// Reads answered stale while a refresh ran in the background.
    pub stale_served: u64,
    /// Reads answered stale because refreshes failed.
    pub stale_if_error: u64,
    /// Reads answered "not found" from the negative cache.
    pub negative_hits: u64,
    /// Reads that joined a refresh another read of this node had started.
    pub coalesced: u64,
    /// Refreshes this node ran.
    pub refreshes: u64,
    /// Of them, failed (error, timeout, panic).
    pub failures: u64,
    /// Of them, whose result was refused because the entry had moved on
    /// (its lock taken over, a put, an invalidation).
    pub fenced: u64,
    /// Reads that gave up waiting.
    pub timeouts: u64,
    /// Entries in this node's memory now.
    pub l1_entries: u64,
    /// Refreshes under way on this node now (or waiting on another node's).
    pub in_flight: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self, module: &str, l1_entries: u64, in_flight: u64) -> ModuleStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ModuleStats {
            module: module.to_owned(),
            l1_hits: get(&self.l1_hits),
            l2_hits: get(&self.l2_hits),
            misses: get(&self.misses),
            stale_served: get(&self.stale_served),
            stale_if_error: get(&self.stale_if_error),
            negative_hits: get(&self.negative_hits),
            coalesced: get(&self.coalesced),
            refreshes: get(&self.refreshes),
            failures: get(&self.failures),
            fenced: get(&self.fenced),
            timeouts: get(&self.timeouts),
            l1_entries,
            in_flight,
        }
    }
}
