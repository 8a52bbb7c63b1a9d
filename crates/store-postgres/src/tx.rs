//! [`PgTx`]: the PostgreSQL write transaction Capstan's writes share with
//! the caller's SQL. PostgreSQL delivers a transaction's NOTIFYs at commit
//! and drops them at rollback (a savepoint's too), so the notifications of
//! its writes ride inside it: nothing to send afterwards.

use std::ops::{Deref, DerefMut};

use capstan_store::jobs::{InsertMany, Inserted};
use capstan_store::{Notification, StoreResult, StoreTx};
use sqlx::{Acquire, PgConnection, Postgres, Transaction};

use crate::row::db;

/// A write transaction on PostgreSQL (see the module docs). Derefs to its
/// connection: `sqlx::query(…).execute(&mut *tx)` runs your SQL in it.
#[derive(Debug)]
pub struct PgTx<'c> {
    tx: Transaction<'c, Postgres>,
}

impl<'c> PgTx<'c> {
    pub(crate) fn new(tx: Transaction<'c, Postgres>) -> Self {
        PgTx { tx }
    }

    /// The sqlx transaction, for APIs that want it rather than a connection.
    pub fn sqlx(&mut self) -> &mut Transaction<'c, Postgres> {
        &mut self.tx
    }

    /// Unwrap into the sqlx transaction (Capstan's writes so far stay in it).
    pub fn into_sqlx(self) -> Transaction<'c, Postgres> {
        self.tx
    }
}

impl Deref for PgTx<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for PgTx<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// `SELECT pg_notify(channel, payload)` on `conn`.
pub(crate) async fn notify_on(conn: &mut PgConnection, n: &Notification) -> StoreResult<()> {
    n.check()?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(crate::channel(n.topic))
        .bind(&n.payload)
        .execute(conn)
        .await
        .map_err(db("notify"))?;
    Ok(())
}

impl<'c> StoreTx for PgTx<'c> {
    type Savepoint<'a>
        = PgTx<'a>
    where
        Self: 'a;

    async fn insert_many(&mut self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        let keyed = p
            .jobs
            .iter()
            .any(|j| j.idempotency_key.is_some() || j.dedupe_key.is_some());
        if !keyed {
            // One statement: it writes every job or none.
            return crate::jobs::enqueue::insert_in(&mut self.tx, p).await;
        }
        // Keys take several statements (insert, look up the holders, again
        // if a holder vanished): a savepoint makes the call all or nothing,
        // so an error leaves the transaction as it was. Only keyed batches
        // pay for it: every subtransaction that writes takes an xid.
        let mut sp = (&mut self.tx).begin().await.map_err(db("insert_many"))?;
        match crate::jobs::enqueue::insert_in(&mut sp, p).await {
            Ok(inserted) => {
                sp.commit().await.map_err(db("insert_many"))?;
                Ok(inserted)
            }
            Err(e) => {
                let _ = sp.rollback().await;
                Err(e)
            }
        }
    }

    async fn notify(&mut self, n: Notification) -> StoreResult<()> {
        notify_on(&mut self.tx, &n).await
    }

    async fn savepoint(&mut self) -> StoreResult<PgTx<'_>> {
        let tx = (&mut self.tx).begin().await.map_err(db("savepoint"))?;
        Ok(PgTx { tx })
    }

    async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await.map_err(db("commit"))
    }

    async fn rollback(self) -> StoreResult<()> {
        self.tx.rollback().await.map_err(db("rollback"))
    }
}
