//! [`ModuleStore`] for [`AnyStore`].

use capstan_store::modules::{
    FinishRefresh, InvalidateEntries, ListEntries, LockOutcome, LockRefresh, ModuleEntry, PutEntry,
    ReadEntry,
};
use capstan_store::{ModuleStore, StoreResult};

use super::{AnyStore, forward};

impl ModuleStore for AnyStore {
    async fn read_entry(&self, p: &ReadEntry) -> StoreResult<Option<ModuleEntry>> {
        forward!(self, s => s.read_entry(p))
    }
    async fn lock_refresh(&self, p: &LockRefresh) -> StoreResult<LockOutcome> {
        forward!(self, s => s.lock_refresh(p))
    }
    async fn finish_refresh(&self, p: &FinishRefresh) -> StoreResult<Option<ModuleEntry>> {
        forward!(self, s => s.finish_refresh(p))
    }
    async fn put_entry(&self, p: &PutEntry) -> StoreResult<ModuleEntry> {
        forward!(self, s => s.put_entry(p))
    }
    async fn invalidate_entries(&self, p: &InvalidateEntries) -> StoreResult<u64> {
        forward!(self, s => s.invalidate_entries(p))
    }
    async fn list_entries(&self, p: &ListEntries) -> StoreResult<Vec<ModuleEntry>> {
        forward!(self, s => s.list_entries(p))
    }
}
