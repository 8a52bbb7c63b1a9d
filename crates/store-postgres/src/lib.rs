//! The production backend: Capstan on PostgreSQL, shared by many nodes.
//!
//! Claims use `FOR UPDATE SKIP LOCKED` inside `capstan.claim_jobs` (a PL/pgSQL
//! function whose planner settings pin the claim to its partial index), so
//! concurrent claimers never wait on or double-claim each other's rows.
//! Finishes are set-based (`UPDATE … FROM jsonb_to_recordset($1)`), one round
//! trip per batch. Wake-ups ride on LISTEN/NOTIFY: at most one NOTIFY per
//! enqueueing statement, because every NOTIFYing transaction takes a global
//! lock at commit.

mod connect;
mod jobs;
mod leader;
mod listen;
mod modules;
mod nodes;
mod queues;
mod row;
mod server;
mod tx;

use std::sync::Arc;

use capstan_store::{
    Capabilities, Notification, NotificationHub, Notifications, Store, StoreError, StoreResult,
    Topic,
};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub use connect::{PgConfig, PgOptions};
pub use server::ServerActivity;
pub use tx::PgTx;

/// The migrations this version has (for [`Store::check_schema`]).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Every topic's NOTIFY channel is this prefix and the topic's name
/// (`capstan_jobs`, `capstan_control`), so SQL can notify a topic too.
pub const CHANNEL_PREFIX: &str = "capstan_";

/// The NOTIFY channel of `topic`.
pub fn channel(topic: Topic) -> String {
    format!("{CHANNEL_PREFIX}{}", topic.name())
}

/// Capstan's store on PostgreSQL. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Claims, enqueues, reads, operator actions.
    pool: PgPool,
    /// A few connections of their own for what keeps the work durable —
    /// finishes and lease extensions — so that a pool busy with claims or an
    /// application's queries never holds them up.
    control: PgPool,
    /// Two connections for what keeps a node alive — its heartbeat,
    /// registration and rescues — so that neither the main pool nor a burst
    /// of handler heartbeats ever delays a node's beat past its timeout.
    beat: PgPool,
    hub: NotificationHub,
    listener: OnceCell<listen::Listener>,
    /// Stops the listener task when the last clone of the store is dropped.
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl PgStore {
    /// Connect to `url` (`postgres://…`) with default settings. Does not migrate.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the server cannot be reached or refuses the login.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(PgConfig::from_url(url)?).await
    }

    /// Connect with `config`. Does not migrate.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the server cannot be reached or refuses the login.
    pub async fn connect_with(config: PgConfig) -> StoreResult<Self> {
        let pool = connect::open_pool(&config).await?;
        Ok(Self::from_pool(pool))
    }

    /// Wrap an existing pool (your application's). Does not migrate. Two
    /// small pools of Capstan's own, opened on demand with the same options,
    /// serve finishes and lease extensions (at most 4 connections) and node
    /// heartbeats and rescues (at most 2).
    pub fn from_pool(pool: PgPool) -> Self {
        let control = connect::side_pool(&pool, 4);
        let beat = connect::side_pool(&pool, 2);
        PgStore {
            inner: Arc::new(Inner {
                pool,
                control,
                beat,
                hub: NotificationHub::new(),
                listener: OnceCell::new(),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Wrap a transaction you began yourself (on any pool or connection to
    /// this database), so Capstan's writes join it.
    pub fn wrap<'c>(&self, tx: Transaction<'c, Postgres>) -> PgTx<'c> {
        PgTx::new(tx)
    }
}

impl Store for PgStore {
    type Tx = PgTx<'static>;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            listen_notify: true,
            skip_locked: true,
            backend: "postgres",
        }
    }

    async fn migrate(&self) -> StoreResult<()> {
        let live = connect::live_older_nodes(&self.inner.pool).await?;
        if live > 0 {
            return Err(StoreError::live_older_nodes("postgres", live));
        }
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.create_schema("capstan");
        migrator.dangerous_set_table_name("capstan.migrations");
        migrator
            .run(&self.inner.pool)
            .await
            .map_err(|e| StoreError::Migrate {
                backend: "postgres",
                source: Box::new(e),
            })
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let applied = connect::schema_version(&self.inner.pool).await?;
        StoreError::check_schema_version(
            "postgres",
            applied,
            MIGRATOR.migrations.iter().map(|m| m.version),
        )
    }

    async fn begin(&self) -> StoreResult<PgTx<'static>> {
        let tx = self.inner.pool.begin().await.map_err(row::db("begin"))?;
        Ok(PgTx::new(tx))
    }

    async fn subscribe(&self, topics: &[Topic]) -> StoreResult<Notifications> {
        // Subscribed before the LISTEN: nothing that arrives after it is missed.
        let rx = self.inner.hub.subscribe(topics);
        let listener = self
            .inner
            .listener
            .get_or_try_init(|| {
                listen::Listener::spawn(
                    self.inner.pool.clone(),
                    self.inner.hub.clone(),
                    self.inner.stop.clone(),
                )
            })
            .await?;
        listener.listen(topics).await?;
        Ok(rx)
    }

    async fn notify(&self, n: Notification) -> StoreResult<()> {
        let mut conn = self.inner.pool.acquire().await.map_err(row::db("notify"))?;
        tx::notify_on(&mut conn, &n).await
    }

    async fn close(&self) {
        self.inner.stop.cancel();
        self.inner.pool.close().await;
        self.inner.control.close().await;
        self.inner.beat.close().await;
    }
}
