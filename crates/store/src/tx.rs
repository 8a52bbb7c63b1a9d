//! [`StoreTx`]: a write transaction that Capstan's writes share with the
//! caller's own SQL (River's "the transaction implements the same
//! operations"). Enqueue is the first such write; appending an event, taking
//! a sequence number and completing a job from inside a handler's
//! transaction come next, each as one more method here.
//!
//! Invariant: nothing a transaction wrote is visible to anyone else, nor
//! announced, before [`StoreTx::commit`] returns; after a rollback (or a
//! drop without commit) it never is. The notifications its writes gathered
//! are sent at commit (PostgreSQL's NOTIFY inside the transaction; SQLite's
//! in-process hub right after `COMMIT`), so there is no "wake after commit"
//! step for the caller to forget.

use std::future::Future;

use crate::jobs::{InsertMany, Inserted};
use crate::{Notification, StoreResult};

/// A backend's write transaction (see the module docs). Each backend's type
/// also derefs to its sqlx connection, so the caller's SQL runs in it:
/// `sqlx::query(…).execute(&mut *tx)`.
pub trait StoreTx: Send {
    /// A savepoint inside this transaction: its writes and notifications
    /// join the outer transaction at its commit, and vanish alone at its
    /// rollback.
    type Savepoint<'a>: StoreTx
    where
        Self: 'a;

    /// Insert jobs as [`crate::JobStore::insert_many`] does, inside this
    /// transaction: they exist, and wake workers, only once it commits.
    fn insert_many(
        &mut self,
        p: &InsertMany,
    ) -> impl Future<Output = StoreResult<Vec<Inserted>>> + Send;

    /// Send `n` when (and only if) this transaction commits.
    fn notify(&mut self, n: Notification) -> impl Future<Output = StoreResult<()>> + Send;

    /// Open a savepoint.
    fn savepoint(&mut self) -> impl Future<Output = StoreResult<Self::Savepoint<'_>>> + Send;

    /// Commit, then send the notifications gathered.
    fn commit(self) -> impl Future<Output = StoreResult<()>> + Send;

    /// Roll back; nothing written or gathered survives. Dropping the
    /// transaction without committing does the same.
    fn rollback(self) -> impl Future<Output = StoreResult<()>> + Send;
}
