//! [`Store`]: a complete backend — every noun's trait, plus migrations,
//! transactions and notifications. Methods return `impl Future + Send`
//! rather than being `async fn`, so generic callers (the runtime spawns
//! them) get `Send` futures. Dispatch is static (`Client<S: Store>`).

use std::future::Future;

use crate::jobs::JobStore;
use crate::leader::LeaderStore;
use crate::modules::ModuleStore;
use crate::nodes::NodeStore;
use crate::queues::QueueStore;
use crate::{Capabilities, Notification, Notifications, StoreResult, StoreTx, Topic};

/// A complete backend.
pub trait Store:
    JobStore + NodeStore + QueueStore + LeaderStore + ModuleStore + Clone + 'static
{
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
