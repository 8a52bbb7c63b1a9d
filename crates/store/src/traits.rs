//! The store traits, one per noun. Methods return `impl Future + Send` rather
//! than being `async fn`, so generic callers (the runtime spawns them) get
//! `Send` futures. Dispatch is static (`Client<S: Store>`).

use std::future::Future;

use capstan_core::{Job, JobId};

use crate::{
    CancelJob, CancelOutcome, Capabilities, Claim, DeleteFinished, DeregisterNode, ExtendLeases,
    FinishMany, HeartbeatNode, InsertMany, Inserted, LeaseReport, ListJobs, MarkUnhandled,
    NodeBeat, NodeInfo, Notification, Notifications, PromoteDue, PromoteReport, QueueCounts,
    RegisterNode, RegisterReport, Rescue, RescueReport, RetryJob, StoreResult, StoreTx, Topic,
};

/// Jobs: enqueue, claim, finish, and the maintenance of their table.
///
/// Every write that can make a job runnable — `insert_many`, `promote_due`,
/// `rescue`, a `finish_many` that hands back or retries at once,
/// `retry_job`, and `register_node` when it reclaims or un-sets-aside jobs —
/// sends one [`crate::Topic::JOBS`] notification naming the queues (or `*`)
/// once it commits; `cancel_job` of a running job sends
/// [`crate::Topic::CONTROL`]. The conformance area `notify` checks each.
pub trait JobStore: Send + Sync {
    /// Insert many jobs in one round trip and one transaction, honouring
    /// idempotency and dedupe keys.
    fn insert_many(
        &self,
        p: &InsertMany,
    ) -> impl Future<Output = StoreResult<Vec<Inserted>>> + Send;

    /// Claim a batch of available jobs for a node (see [`Claim`]). A claimed
    /// row that cannot be decoded is failed on its own, never returned, and
    /// never strands the rest of the batch.
    fn claim(&self, p: &Claim) -> impl Future<Output = StoreResult<Vec<Job>>> + Send;

    /// Finish a batch of attempts; rows whose lease is no longer current are
    /// reported as fenced and left untouched.
    fn finish_many(&self, p: &FinishMany) -> impl Future<Output = StoreResult<LeaseReport>> + Send;

    /// Extend the leases of running jobs and record their progress; rows
    /// whose lease is no longer current are reported as fenced.
    fn extend_leases(
        &self,
        p: &ExtendLeases,
    ) -> impl Future<Output = StoreResult<LeaseReport>> + Send;

    /// Move due scheduled and retryable jobs to available.
    fn promote_due(
        &self,
        p: &PromoteDue,
    ) -> impl Future<Output = StoreResult<PromoteReport>> + Send;

    /// Rescue running jobs of dead nodes and expired leases (see [`Rescue`]).
    fn rescue(&self, p: &Rescue) -> impl Future<Output = StoreResult<RescueReport>> + Send;

    /// Set aside available jobs no live node can run (see [`MarkUnhandled`]);
    /// returns how many.
    fn mark_unhandled(&self, p: &MarkUnhandled) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Delete finished jobs past retention; returns how many were deleted.
    fn delete_finished(&self, p: &DeleteFinished) -> impl Future<Output = StoreResult<u64>> + Send;

    /// One job by id.
    fn get_job(&self, id: JobId) -> impl Future<Output = StoreResult<Option<Job>>> + Send;

    /// Jobs matching a filter, newest first.
    fn list_jobs(&self, p: &ListJobs) -> impl Future<Output = StoreResult<Vec<Job>>> + Send;

    /// Cancel a waiting job, or ask the holder of a running job to stop it.
    fn cancel_job(&self, p: &CancelJob) -> impl Future<Output = StoreResult<CancelOutcome>> + Send;

    /// Make a job available now (a failed, cancelled, completed or waiting job).
    fn retry_job(&self, p: &RetryJob) -> impl Future<Output = StoreResult<Job>> + Send;
}

/// Nodes: the processes that hold jobs.
pub trait NodeStore: Send + Sync {
    /// Register a node: jobs a previous process left under the same id are
    /// reclaimed, and unhandled jobs of its queues and kinds are put back in
    /// the claim order.
    ///
    /// Fails with `NodeIdInUse` while another incarnation's row is alive
    /// (unless `takeover` names its beat count).
    fn register_node(
        &self,
        p: &RegisterNode,
    ) -> impl Future<Output = StoreResult<RegisterReport>> + Send;

    /// Record a node's heartbeat (see [`HeartbeatNode`]); returns the jobs it
    /// holds and the cancel requests for them.
    fn heartbeat_node(
        &self,
        p: &HeartbeatNode,
    ) -> impl Future<Output = StoreResult<NodeBeat>> + Send;

    /// Remove a node that stopped cleanly.
    fn deregister_node(&self, p: &DeregisterNode) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every registered node.
    fn list_nodes(&self) -> impl Future<Output = StoreResult<Vec<NodeInfo>>> + Send;
}

/// Queues: counts and removal.
pub trait QueueStore: Send + Sync {
    /// Jobs per queue and state.
    fn queue_counts(&self) -> impl Future<Output = StoreResult<Vec<QueueCounts>>> + Send;

    /// Delete every job of a queue (whatever its state); returns how many.
    fn delete_queue(&self, queue: &str) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// A complete backend.
pub trait Store: JobStore + NodeStore + QueueStore + Clone + 'static {
    /// This backend's write transaction, begun by [`Store::begin`]. Each
    /// backend also wraps a sqlx transaction the caller began itself
    /// (`PgStore::wrap`, `SqliteStore::wrap`).
    type Tx: StoreTx + 'static;

    /// What this backend offers.
    fn capabilities(&self) -> Capabilities;

    /// Apply pending schema migrations; re-running is a no-op.
    fn migrate(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// Check, without writing anything, that the schema is migrated to what
    /// this version needs: [`crate::StoreError::SchemaOutdated`] if not.
    fn check_schema(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// Begin a write transaction (on SQLite `BEGIN IMMEDIATE` on the one
    /// writer connection: keep it short, every write of this process waits
    /// for it, and do not call the store's own writes while holding it).
    fn begin(&self) -> impl Future<Output = StoreResult<Self::Tx>> + Send;

    /// Receive the notifications on `topics` (and every
    /// [`crate::Received::Missed`]). On PostgreSQL this LISTENs, on the one
    /// LISTEN connection, to the topics' channels before it returns, so
    /// nothing sent after it returns is missed.
    fn subscribe(
        &self,
        topics: &[Topic],
    ) -> impl Future<Output = StoreResult<Notifications>> + Send;

    /// Send a notification now, to this process and, where the backend can,
    /// to other processes.
    fn notify(&self, n: Notification) -> impl Future<Output = StoreResult<()>> + Send;

    /// Close connections.
    fn close(&self) -> impl Future<Output = ()> + Send;
}
