//! [`AnyStore`]: the backend chosen at run time from a URL. The runtime is
//! generic over [`Store`] (static dispatch); this enum erases the choice once,
//! at the edge (the CLI, or an application that reads its URL from config).

use capstan_core::{Job, JobId};
use capstan_store::{
    CancelJob, CancelOutcome, Capabilities, Claim, DeleteFinished, DeregisterNode, ExtendLeases,
    FinishMany, HeartbeatNode, InsertMany, Inserted, JobStore, LeaseReport, ListJobs,
    MarkUnhandled, NodeBeat, NodeInfo, NodeStore, PromoteDue, PromoteReport, QueueCounts,
    QueueStore, RegisterNode, RegisterReport, Rescue, RescueReport, RetryJob, Store, StoreError,
    StoreResult, Wakeup, Wakeups,
};
use capstan_store_postgres::PgStore;
use capstan_store_sqlite::SqliteStore;

/// SQLite or PostgreSQL, chosen by URL.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// The embedded backend.
    Sqlite(SqliteStore),
    /// The production backend.
    Postgres(PgStore),
}

impl AnyStore {
    /// Connect to `url`: `postgres://…` or `postgresql://…` for PostgreSQL;
    /// `sqlite://path`, `sqlite:path` or a plain file path for SQLite. Does
    /// not migrate.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the database cannot be opened.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(AnyStore::Postgres(PgStore::connect(url).await?))
        } else if url.contains("://") && !url.starts_with("sqlite://") {
            Err(StoreError::Connect {
                url: capstan_store_postgres::redact_url(url),
                message: "unknown database URL scheme: use postgres://… or sqlite://path".into(),
            })
        } else {
            Ok(AnyStore::Sqlite(SqliteStore::connect(url).await?))
        }
    }
}

impl AnyStore {
    /// Insert every batch in one transaction: all the jobs exist, or none.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a bad job, or the database's error; in
    /// both cases nothing is written.
    pub async fn insert_all_or_nothing(
        &self,
        batches: &[InsertMany],
    ) -> StoreResult<Vec<Inserted>> {
        let mut out = Vec::new();
        match self {
            AnyStore::Sqlite(s) => {
                let mut tx = s
                    .writer()
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(|e| StoreError::database("insert_all_or_nothing", e))?;
                for b in batches {
                    out.extend(SqliteStore::insert_many_in(&mut tx, b).await?);
                }
                tx.commit()
                    .await
                    .map_err(|e| StoreError::database("insert_all_or_nothing", e))?;
                s.wake(Wakeup::All).await?;
            }
            AnyStore::Postgres(s) => {
                let mut tx = s
                    .pool()
                    .begin()
                    .await
                    .map_err(|e| StoreError::database("insert_all_or_nothing", e))?;
                for b in batches {
                    out.extend(PgStore::insert_many_in(&mut tx, b).await?);
                }
                tx.commit()
                    .await
                    .map_err(|e| StoreError::database("insert_all_or_nothing", e))?;
            }
        }
        Ok(out)
    }
}

/// Forward one method to whichever backend this is.
macro_rules! forward {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Postgres($s) => $call.await,
        }
    };
}

impl JobStore for AnyStore {
    async fn insert_many(&self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        forward!(self, s => s.insert_many(p))
    }
    async fn claim(&self, p: &Claim) -> StoreResult<Vec<Job>> {
        forward!(self, s => s.claim(p))
    }
    async fn finish_many(&self, p: &FinishMany) -> StoreResult<LeaseReport> {
        forward!(self, s => s.finish_many(p))
    }
    async fn extend_leases(&self, p: &ExtendLeases) -> StoreResult<LeaseReport> {
        forward!(self, s => s.extend_leases(p))
    }
    async fn promote_due(&self, p: &PromoteDue) -> StoreResult<PromoteReport> {
        forward!(self, s => s.promote_due(p))
    }
    async fn rescue(&self, p: &Rescue) -> StoreResult<RescueReport> {
        forward!(self, s => s.rescue(p))
    }
    async fn mark_unhandled(&self, p: &MarkUnhandled) -> StoreResult<u64> {
        forward!(self, s => s.mark_unhandled(p))
    }
    async fn delete_finished(&self, p: &DeleteFinished) -> StoreResult<u64> {
        forward!(self, s => s.delete_finished(p))
    }
    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        forward!(self, s => s.get_job(id))
    }
    async fn list_jobs(&self, p: &ListJobs) -> StoreResult<Vec<Job>> {
        forward!(self, s => s.list_jobs(p))
    }
    async fn cancel_job(&self, p: &CancelJob) -> StoreResult<CancelOutcome> {
        forward!(self, s => s.cancel_job(p))
    }
    async fn retry_job(&self, p: &RetryJob) -> StoreResult<Job> {
        forward!(self, s => s.retry_job(p))
    }
}

impl NodeStore for AnyStore {
    async fn register_node(&self, p: &RegisterNode) -> StoreResult<RegisterReport> {
        forward!(self, s => s.register_node(p))
    }
    async fn heartbeat_node(&self, p: &HeartbeatNode) -> StoreResult<NodeBeat> {
        forward!(self, s => s.heartbeat_node(p))
    }
    async fn deregister_node(&self, p: &DeregisterNode) -> StoreResult<()> {
        forward!(self, s => s.deregister_node(p))
    }
    async fn list_nodes(&self) -> StoreResult<Vec<NodeInfo>> {
        forward!(self, s => s.list_nodes())
    }
}

impl QueueStore for AnyStore {
    async fn queue_counts(&self) -> StoreResult<Vec<QueueCounts>> {
        forward!(self, s => s.queue_counts())
    }
    async fn delete_queue(&self, queue: &str) -> StoreResult<u64> {
        forward!(self, s => s.delete_queue(queue))
    }
}

impl Store for AnyStore {
    fn capabilities(&self) -> Capabilities {
        match self {
            AnyStore::Sqlite(s) => s.capabilities(),
            AnyStore::Postgres(s) => s.capabilities(),
        }
    }
    async fn migrate(&self) -> StoreResult<()> {
        forward!(self, s => s.migrate())
    }
    async fn subscribe(&self) -> StoreResult<Wakeups> {
        forward!(self, s => s.subscribe())
    }
    async fn wake(&self, wakeup: Wakeup) -> StoreResult<()> {
        forward!(self, s => s.wake(wakeup.clone()))
    }
    async fn close(&self) {
        forward!(self, s => s.close())
    }
}
