//! [`AnyTx`]: the write transaction of whichever backend [`AnyStore`] chose.
//! Your own SQL needs the backend's connection type: match on the variant
//! (`AnyTx::Postgres(tx) => sqlx::query(…).execute(&mut **tx)`).

use capstan_store::jobs::{InsertMany, Inserted};
use capstan_store::{Notification, StoreResult, StoreTx};
use capstan_store_postgres::PgTx;
use capstan_store_sqlite::SqliteTx;

#[cfg(doc)]
use super::AnyStore;

/// A SQLite or PostgreSQL write transaction.
#[derive(Debug)]
pub enum AnyTx<'c> {
    /// On the embedded backend.
    Sqlite(SqliteTx<'c>),
    /// On the production backend.
    Postgres(PgTx<'c>),
}

macro_rules! forward_tx {
    ($self:ident, $t:ident => $call:expr) => {
        match $self {
            AnyTx::Sqlite($t) => $call.await,
            AnyTx::Postgres($t) => $call.await,
        }
    };
}

impl<'c> StoreTx for AnyTx<'c> {
    type Savepoint<'a>
        = AnyTx<'a>
    where
        Self: 'a;

    async fn insert_many(&mut self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        forward_tx!(self, t => t.insert_many(p))
    }
    async fn notify(&mut self, n: Notification) -> StoreResult<()> {
        forward_tx!(self, t => t.notify(n.clone()))
    }
    async fn savepoint(&mut self) -> StoreResult<AnyTx<'_>> {
        Ok(match self {
            AnyTx::Sqlite(t) => AnyTx::Sqlite(t.savepoint().await?),
            AnyTx::Postgres(t) => AnyTx::Postgres(t.savepoint().await?),
        })
    }
    async fn commit(self) -> StoreResult<()> {
        forward_tx!(self, t => t.commit())
    }
    async fn rollback(self) -> StoreResult<()> {
        forward_tx!(self, t => t.rollback())
    }
}
