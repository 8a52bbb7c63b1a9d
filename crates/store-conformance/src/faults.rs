//! A store that fails on demand: the tests of outages, blips and refused
//! writes wrap a real store in it. Every operation first asks its
//! [`Faults`]: the database may be "down" (every call fails as unavailable,
//! as during a failover), the next few calls of one operation may fail, or
//! finishes of one job may be refused (as a database refuses a bad row).
//! Calls are counted per operation, so a test can wait for "the rescuer ran
//! twice" instead of sleeping.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use capstan_core::{Job, JobId};
use capstan_store::jobs::{
    CancelJob, CancelOutcome, Claim, DeleteFinished, ExtendLeases, FinishMany, InsertMany,
    Inserted, LeaseReport, ListJobs, MarkUnhandled, Outcome, PromoteDue, PromoteReport, Rescue,
    RescueReport, RetryJob,
};
use capstan_store::leader::{ElectLeader, ResignLeader};
use capstan_store::modules::{
    FinishRefresh, InvalidateEntries, ListEntries, LockOutcome, LockRefresh, ModuleEntry, PutEntry,
    ReadEntry,
};
use capstan_store::nodes::{
    DeregisterNode, HeartbeatNode, NodeBeat, NodeInfo, RegisterNode, RegisterReport,
};
use capstan_store::queues::QueueCounts;
use capstan_store::{
    Capabilities, JobStore, LeaderStore, ModuleStore, NodeStore, Notification, Notifications,
    QueueStore, Store, StoreError, StoreResult, Topic,
};

#[derive(Debug, Default)]
struct State {
    down: AtomicBool,
    fail_next: Mutex<HashMap<&'static str, u32>>,
    hang_next: Mutex<HashMap<&'static str, u32>>,
    calls: Mutex<HashMap<&'static str, u64>>,
    answered: Mutex<HashMap<&'static str, u64>>,
    refuse_completion_of: Mutex<Option<JobId>>,
    largest_finish_batch: std::sync::atomic::AtomicUsize,
}

/// Counts one planned fault of `operation` down; true if one was left.
fn take_one(planned: &Mutex<HashMap<&'static str, u32>>, operation: &'static str) -> bool {
    match planned.lock().unwrap().get_mut(operation) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

/// The switches of a [`FaultyStore`]; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<State>,
}

impl Faults {
    /// Fail every call (as unavailable) until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Fail the next `n` calls of `operation` (as unavailable).
    pub fn fail_next(&self, operation: &'static str, n: u32) {
        self.state.fail_next.lock().unwrap().insert(operation, n);
    }

    /// Let the next `n` calls of `operation` never answer, neither with a
    /// result nor an error (as over a connection a failover left half-open).
    pub fn hang_next(&self, operation: &'static str, n: u32) {
        self.state.hang_next.lock().unwrap().insert(operation, n);
    }

    /// Refuse (as the database refuses a row it cannot store) every batch
    /// of finishes that completes job `id`.
    pub fn refuse_completion_of(&self, id: JobId) {
        *self.state.refuse_completion_of.lock().unwrap() = Some(id);
    }

    /// How many calls of `operation` were made (failed ones included).
    pub fn calls(&self, operation: &'static str) -> u64 {
        self.state
            .calls
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// The most finishes one `finish_many` call carried.
    pub fn largest_finish_batch(&self) -> usize {
        self.state.largest_finish_batch.load(Ordering::SeqCst)
    }

    /// How many calls of `operation` have returned (failed ones included).
    pub fn answered(&self, operation: &'static str) -> u64 {
        self.state
            .answered
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Count the call, fail it when planned, else await `call`.
    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let hang = take_one(&self.state.hang_next, operation);
        let r = match self.check(operation) {
            Ok(()) if hang => std::future::pending().await,
            Ok(()) => call.await,
            Err(e) => Err(e),
        };
        *self
            .state
            .answered
            .lock()
            .unwrap()
            .entry(operation)
            .or_default() += 1;
        r
    }

    fn check(&self, operation: &'static str) -> StoreResult<()> {
        *self
            .state
            .calls
            .lock()
            .unwrap()
            .entry(operation)
            .or_default() += 1;
        let planned = take_one(&self.state.fail_next, operation);
        if planned || self.state.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                operation,
                source: "injected fault: the database is unreachable".into(),
            });
        }
        Ok(())
    }
}

/// A real store behind [`Faults`].
#[derive(Debug, Clone)]
pub struct FaultyStore<S> {
    inner: S,
    faults: Faults,
}

impl<S> FaultyStore<S> {
    /// Wrap `inner`; `faults` switches the failures.
    pub fn new(inner: S, faults: Faults) -> Self {
        FaultyStore { inner, faults }
    }
}

impl<S: JobStore> JobStore for FaultyStore<S> {
    async fn insert_many(&self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        self.faults
            .call("insert_many", self.inner.insert_many(p))
            .await
    }
    async fn claim(&self, p: &Claim) -> StoreResult<Vec<Job>> {
        self.faults.call("claim", self.inner.claim(p)).await
    }
    async fn finish_many(&self, p: &FinishMany) -> StoreResult<LeaseReport> {
        self.faults
            .state
            .largest_finish_batch
            .fetch_max(p.finishes.len(), Ordering::SeqCst);
        let refused = *self.faults.state.refuse_completion_of.lock().unwrap();
        let refuse = refused.filter(|id| {
            p.finishes
                .iter()
                .any(|f| f.lease.job_id == *id && matches!(f.outcome, Outcome::Complete { .. }))
        });
        self.faults
            .call("finish_many", async {
                match refuse {
                    Some(id) => Err(StoreError::Refused {
                        operation: "finish_many",
                        source: format!("injected fault: cannot store the result of job {id}")
                            .into(),
                    }),
                    None => self.inner.finish_many(p).await,
                }
            })
            .await
    }
    async fn extend_leases(&self, p: &ExtendLeases) -> StoreResult<LeaseReport> {
        self.faults
            .call("extend_leases", self.inner.extend_leases(p))
            .await
    }
    async fn promote_due(&self, p: &PromoteDue) -> StoreResult<PromoteReport> {
        self.faults
            .call("promote_due", self.inner.promote_due(p))
            .await
    }
    async fn rescue(&self, p: &Rescue) -> StoreResult<RescueReport> {
        self.faults.call("rescue", self.inner.rescue(p)).await
    }
    async fn mark_unhandled(&self, p: &MarkUnhandled) -> StoreResult<u64> {
        self.faults
            .call("mark_unhandled", self.inner.mark_unhandled(p))
            .await
    }
    async fn delete_finished(&self, p: &DeleteFinished) -> StoreResult<u64> {
        self.faults
            .call("delete_finished", self.inner.delete_finished(p))
            .await
    }
    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.faults.call("get_job", self.inner.get_job(id)).await
    }
    async fn list_jobs(&self, p: &ListJobs) -> StoreResult<Vec<Job>> {
        self.faults.call("list_jobs", self.inner.list_jobs(p)).await
    }
    async fn cancel_job(&self, p: &CancelJob) -> StoreResult<CancelOutcome> {
        self.faults
            .call("cancel_job", self.inner.cancel_job(p))
            .await
    }
    async fn retry_job(&self, p: &RetryJob) -> StoreResult<Job> {
        self.faults.call("retry_job", self.inner.retry_job(p)).await
    }
}

impl<S: NodeStore> NodeStore for FaultyStore<S> {
    async fn register_node(&self, p: &RegisterNode) -> StoreResult<RegisterReport> {
        self.faults
            .call("register_node", self.inner.register_node(p))
            .await
    }
    async fn heartbeat_node(&self, p: &HeartbeatNode) -> StoreResult<NodeBeat> {
        self.faults
            .call("heartbeat_node", self.inner.heartbeat_node(p))
            .await
    }
    async fn deregister_node(&self, p: &DeregisterNode) -> StoreResult<()> {
        self.faults
            .call("deregister_node", self.inner.deregister_node(p))
            .await
    }
    async fn list_nodes(&self) -> StoreResult<Vec<NodeInfo>> {
        self.faults
            .call("list_nodes", self.inner.list_nodes())
            .await
    }
}

impl<S: LeaderStore> LeaderStore for FaultyStore<S> {
    async fn elect_leader(&self, p: &ElectLeader) -> StoreResult<bool> {
        self.faults
            .call("elect_leader", self.inner.elect_leader(p))
            .await
    }
    async fn resign_leader(&self, p: &ResignLeader) -> StoreResult<()> {
        self.faults
            .call("resign_leader", self.inner.resign_leader(p))
            .await
    }
}

impl<S: ModuleStore> ModuleStore for FaultyStore<S> {
    async fn read_entry(&self, p: &ReadEntry) -> StoreResult<Option<ModuleEntry>> {
        self.faults
            .call("read_entry", self.inner.read_entry(p))
            .await
    }
    async fn lock_refresh(&self, p: &LockRefresh) -> StoreResult<LockOutcome> {
        self.faults
            .call("lock_refresh", self.inner.lock_refresh(p))
            .await
    }
    async fn finish_refresh(&self, p: &FinishRefresh) -> StoreResult<Option<ModuleEntry>> {
        self.faults
            .call("finish_refresh", self.inner.finish_refresh(p))
            .await
    }
    async fn put_entry(&self, p: &PutEntry) -> StoreResult<ModuleEntry> {
        self.faults.call("put_entry", self.inner.put_entry(p)).await
    }
    async fn invalidate_entries(&self, p: &InvalidateEntries) -> StoreResult<u64> {
        self.faults
            .call("invalidate_entries", self.inner.invalidate_entries(p))
            .await
    }
    async fn list_entries(&self, p: &ListEntries) -> StoreResult<Vec<ModuleEntry>> {
        self.faults
            .call("list_entries", self.inner.list_entries(p))
            .await
    }
}

impl<S: QueueStore> QueueStore for FaultyStore<S> {
    async fn queue_counts(&self) -> StoreResult<Vec<QueueCounts>> {
        self.faults
            .call("queue_counts", self.inner.queue_counts())
            .await
    }
    async fn delete_queue(&self, queue: &str) -> StoreResult<u64> {
        self.faults
            .call("delete_queue", self.inner.delete_queue(queue))
            .await
    }
}

impl<S: Store> Store for FaultyStore<S> {
    /// The transaction itself does not fault: only beginning one does.
    type Tx = S::Tx;

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn migrate(&self) -> StoreResult<()> {
        self.inner.migrate().await
    }
    async fn check_schema(&self) -> StoreResult<()> {
        self.inner.check_schema().await
    }
    async fn begin(&self) -> StoreResult<S::Tx> {
        self.faults.call("begin", self.inner.begin()).await
    }
    async fn subscribe(&self, topics: &[Topic]) -> StoreResult<Notifications> {
        self.faults
            .call("subscribe", self.inner.subscribe(topics))
            .await
    }
    async fn notify(&self, n: Notification) -> StoreResult<()> {
        self.faults.call("notify", self.inner.notify(n)).await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}
