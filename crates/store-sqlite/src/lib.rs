//! The embedded backend: Capstan on a SQLite file.
//!
//! SQLite allows one writer at a time, so this store funnels every write
//! through a pool of exactly one connection (claims, finishes and enqueues
//! queue up in-process instead of failing with `SQLITE_BUSY`) and serves reads
//! from a separate pool. WAL mode lets those reads run beside the writer.
//! Every write transaction starts with `BEGIN IMMEDIATE`, so another process
//! writing to the same file waits (busy timeout) instead of deadlocking.
//!
//! Batches are set-based: one `UPDATE … FROM json_each(?)` finishes a whole
//! batch, one `UPDATE … WHERE id IN (SELECT … LIMIT n)` claims one.

mod connect;
mod jobs;
mod leader;
mod modules;
mod nodes;
mod queues;
mod row;
mod tx;
mod watch;

use std::sync::Arc;

use capstan_store::{
    Capabilities, Notification, NotificationHub, Notifications, Store, StoreError, StoreResult,
    Topic,
};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::OnceCell;

pub use connect::{SqliteConfig, SqliteOptions};

/// The migrations this version has (for [`Store::check_schema`]).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
pub use tx::SqliteTx;

/// Capstan's store on a SQLite file. Cheap to clone; clones share the pools.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// Exactly one connection: every write goes through it.
    writer: SqlitePool,
    /// Readers, beside the writer (WAL).
    reader: SqlitePool,
    /// In-process notifications.
    hub: NotificationHub,
    /// The cross-process watcher, started on first subscribe.
    watcher: OnceCell<()>,
}

impl SqliteStore {
    /// Open (creating if missing) the database at `url` (`sqlite://path` or a
    /// plain path) with default settings. Does not migrate.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the file cannot be opened or created.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(SqliteConfig::from_url(url)?).await
    }

    /// Open the database described by `config`. Does not migrate.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the file cannot be opened or created.
    pub async fn connect_with(config: SqliteConfig) -> StoreResult<Self> {
        let (writer, reader) = connect::open_pools(&config).await?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer,
                reader,
                hub: NotificationHub::new(),
                watcher: OnceCell::new(),
            }),
        })
    }

    /// The single-writer pool. To write together with Capstan, prefer
    /// [`Store::begin`], whose transaction also announces its jobs at commit.
    /// Whatever you run on it, keep it short: every write of this process,
    /// node heartbeats included, waits for it.
    pub fn writer(&self) -> &SqlitePool {
        &self.inner.writer
    }

    /// Wrap a transaction you began yourself (on [`SqliteStore::writer`]
    /// with `begin_with("BEGIN IMMEDIATE")`, or on a pool of your own on the
    /// same file), so Capstan's writes join it and are announced when it
    /// commits.
    pub fn wrap<'c>(&self, tx: Transaction<'c, Sqlite>) -> SqliteTx<'c> {
        SqliteTx::new(tx, self.inner.hub.clone())
    }

    pub(crate) async fn begin_tx(&self, operation: &'static str) -> StoreResult<SqliteTx<'static>> {
        let tx = self
            .inner
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(crate::row::db(operation))?;
        Ok(self.wrap(tx))
    }

    /// Send notifications of writes that committed on their own.
    pub(crate) fn announce(&self, notifications: impl IntoIterator<Item = Notification>) {
        for n in notifications {
            self.inner.hub.send(n);
        }
    }

    /// The newest migration applied (0 on a fresh file), read on `pool`.
    async fn schema_version(&self) -> StoreResult<i64> {
        let err = crate::row::db("check_schema");
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE name = 'capstan_migrations'",
        )
        .fetch_one(&self.inner.reader)
        .await
        .map_err(err)?;
        if tables == 0 {
            return Ok(0);
        }
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM capstan_migrations WHERE success")
            .fetch_one(&self.inner.reader)
            .await
            .map_err(crate::row::db("check_schema"))
    }

    /// How many nodes of a schema older than
    /// [`capstan_store::NODE_PROTOCOL_VERSION`] beat within the last minute
    /// (0 on a fresh or up-to-date database).
    async fn live_older_nodes(&self) -> StoreResult<i64> {
        let err = crate::row::db("migrate");
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('capstan_migrations', 'capstan_nodes')",
        )
        .fetch_one(&self.inner.writer)
        .await
        .map_err(err)?;
        if tables < 2 {
            return Ok(0);
        }
        let version: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(version), 0) FROM capstan_migrations WHERE success",
        )
        .fetch_one(&self.inner.writer)
        .await
        .map_err(crate::row::db("migrate"))?;
        if version == 0 || version >= capstan_store::NODE_PROTOCOL_VERSION {
            return Ok(0);
        }
        let minute_ago = crate::row::micros(chrono::Utc::now()) - 60_000_000;
        sqlx::query_scalar("SELECT count(*) FROM capstan_nodes WHERE heartbeat_at > ?1")
            .bind(minute_ago)
            .fetch_one(&self.inner.writer)
            .await
            .map_err(crate::row::db("migrate"))
    }

    /// `PRAGMA integrity_check`: `"ok"`, or what SQLite found wrong.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub async fn integrity_check(&self) -> StoreResult<String> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.inner.reader)
            .await
            .map_err(crate::row::db("integrity_check"))?;
        Ok(rows.join("\n"))
    }
}

impl Store for SqliteStore {
    type Tx = SqliteTx<'static>;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            listen_notify: false,
            skip_locked: false,
            backend: "sqlite",
        }
    }

    async fn migrate(&self) -> StoreResult<()> {
        let live = self.live_older_nodes().await?;
        if live > 0 {
            return Err(StoreError::live_older_nodes("sqlite", live));
        }
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.dangerous_set_table_name("capstan_migrations");
        migrator
            .run(&self.inner.writer)
            .await
            .map_err(|e| StoreError::Migrate {
                backend: "sqlite",
                source: Box::new(e),
            })
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let applied = self.schema_version().await?;
        StoreError::check_schema_version(
            "sqlite",
            applied,
            MIGRATOR.migrations.iter().map(|m| m.version),
        )
    }

    async fn begin(&self) -> StoreResult<SqliteTx<'static>> {
        self.begin_tx("begin").await
    }

    async fn subscribe(&self, topics: &[Topic]) -> StoreResult<Notifications> {
        let rx = self.inner.hub.subscribe(topics);
        self.inner
            .watcher
            .get_or_try_init(|| async { watch::spawn(&self.inner).await })
            .await?;
        Ok(rx)
    }

    async fn notify(&self, n: Notification) -> StoreResult<()> {
        n.check()?;
        self.inner.hub.send(n);
        Ok(())
    }

    async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.reader.close().await;
    }
}
