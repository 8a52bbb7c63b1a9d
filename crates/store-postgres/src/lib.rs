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
mod insert;
mod jobs;
mod listen;
mod nodes;
mod queues;
mod row;

use std::sync::Arc;

use capstan_store::{Capabilities, Store, StoreError, StoreResult, Wakeup, WakeupHub, Wakeups};
use sqlx::PgPool;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub use connect::{PgConfig, redact_url};

/// The NOTIFY channel for "jobs became available"; the payload is a
/// comma-separated list of queues, or `*` for all.
pub const JOBS_CHANNEL: &str = "capstan_jobs";
/// The NOTIFY channel for control messages (`cancel:<job id>`).
pub const CONTROL_CHANNEL: &str = "capstan_control";

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
    hub: WakeupHub,
    listener: OnceCell<()>,
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
                hub: WakeupHub::new(),
                listener: OnceCell::new(),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }
}

impl Store for PgStore {
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

    async fn subscribe(&self) -> StoreResult<Wakeups> {
        let rx = self.inner.hub.subscribe();
        self.inner
            .listener
            .get_or_try_init(|| {
                listen::spawn(
                    self.inner.pool.clone(),
                    self.inner.hub.clone(),
                    self.inner.stop.clone(),
                )
            })
            .await?;
        Ok(rx)
    }

    async fn wake(&self, wakeup: Wakeup) -> StoreResult<()> {
        let payload = match &wakeup {
            Wakeup::Queue(q) => (JOBS_CHANNEL, q.clone()),
            Wakeup::All => (JOBS_CHANNEL, "*".to_owned()),
            Wakeup::Cancel(id) => (CONTROL_CHANNEL, format!("cancel:{id}")),
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(payload.0)
            .bind(payload.1)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| StoreError::database("wake", e))?;
        Ok(())
    }

    async fn close(&self) {
        self.inner.stop.cancel();
        self.inner.pool.close().await;
        self.inner.control.close().await;
        self.inner.beat.close().await;
    }
}
