//! [`SqliteTx`]: the SQLite write transaction Capstan's writes share with the
//! caller's SQL. SQLite has no NOTIFY, so the transaction gathers the
//! notifications its writes make and sends them to the in-process hub once
//! `COMMIT` returns; a rollback drops them. Other processes notice the
//! commit through their `data_version` watcher. (A `commit()` future dropped
//! after COMMIT was sent commits without sending them: this process's idle
//! workers then find the jobs at their next poll. Latency, never a job.)

use std::ops::{Deref, DerefMut};

use capstan_store::jobs::{InsertMany, Inserted};
use capstan_store::{Notification, NotificationHub, StoreResult, StoreTx};
use sqlx::{Acquire, Sqlite, SqliteConnection, Transaction};

use crate::row::db;

/// A write transaction on SQLite (see the module docs). Derefs to its
/// connection: `sqlx::query(…).execute(&mut *tx)` runs your SQL in it.
#[derive(Debug)]
pub struct SqliteTx<'c> {
    tx: Transaction<'c, Sqlite>,
    /// Notifications of this transaction's writes, sent at commit.
    gathered: Vec<Notification>,
    /// Where they go at commit: the hub, or the enclosing transaction.
    sink: Sink<'c>,
}

#[derive(Debug)]
enum Sink<'c> {
    Hub(NotificationHub),
    Outer(&'c mut Vec<Notification>),
}

impl<'c> SqliteTx<'c> {
    pub(crate) fn new(tx: Transaction<'c, Sqlite>, hub: NotificationHub) -> Self {
        SqliteTx {
            tx,
            gathered: Vec::new(),
            sink: Sink::Hub(hub),
        }
    }

    /// The sqlx transaction, for APIs that want it rather than a connection.
    /// Notifications gathered so far are still sent at this wrapper's commit.
    pub fn sqlx(&mut self) -> &mut Transaction<'c, Sqlite> {
        &mut self.tx
    }

    pub(crate) fn gather(&mut self, notifications: impl IntoIterator<Item = Notification>) {
        for n in notifications {
            if !self.gathered.contains(&n) {
                self.gathered.push(n);
            }
        }
    }
}

impl Deref for SqliteTx<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for SqliteTx<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

impl<'c> StoreTx for SqliteTx<'c> {
    type Savepoint<'a>
        = SqliteTx<'a>
    where
        Self: 'a;

    async fn insert_many(&mut self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        // In a savepoint (cheap on SQLite), so the call is all or nothing
        // and an error leaves the transaction as it was.
        let mut sp = (&mut self.tx).begin().await.map_err(db("insert_many"))?;
        let inserted = match crate::jobs::enqueue::insert_in(&mut sp, p).await {
            Ok(inserted) => inserted,
            Err(e) => {
                let _ = sp.rollback().await;
                return Err(e);
            }
        };
        sp.commit().await.map_err(db("insert_many"))?;
        self.gather(crate::jobs::enqueue::notifications(p, &inserted));
        Ok(inserted)
    }

    async fn notify(&mut self, n: Notification) -> StoreResult<()> {
        n.check()?;
        self.gather([n]);
        Ok(())
    }

    async fn savepoint(&mut self) -> StoreResult<SqliteTx<'_>> {
        let tx = (&mut self.tx).begin().await.map_err(db("savepoint"))?;
        Ok(SqliteTx {
            tx,
            gathered: Vec::new(),
            sink: Sink::Outer(&mut self.gathered),
        })
    }

    async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await.map_err(db("commit"))?;
        match self.sink {
            Sink::Hub(hub) => self.gathered.into_iter().for_each(|n| hub.send(n)),
            Sink::Outer(outer) => {
                for n in self.gathered {
                    if !outer.contains(&n) {
                        outer.push(n);
                    }
                }
            }
        }
        Ok(())
    }

    async fn rollback(self) -> StoreResult<()> {
        self.tx.rollback().await.map_err(db("rollback"))
    }
}
