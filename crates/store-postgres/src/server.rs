//! What the server itself reports about its work, for `capstan bench`: its
//! processes (whose CPU time can be read when it runs on this machine) and
//! how many statements it ran in this database (when `pg_stat_statements`
//! is installed). Read-only; nothing here is needed to run jobs.

use capstan_store::StoreResult;
use sqlx::Row;

use crate::PgStore;
use crate::row::db;

/// A snapshot of the server's own counters.
#[derive(Debug, Clone, Default)]
pub struct ServerActivity {
    /// The process ids of the server's backends and background processes.
    pub pids: Vec<u32>,
    /// Top-level statements run in this database so far, when the
    /// `pg_stat_statements` extension is installed in it.
    pub statements: Option<u64>,
}

impl PgStore {
    /// Read the server's processes and statement count.
    ///
    /// # Errors
    /// [`capstan_store::StoreError::Database`] when a read fails (for
    /// `pg_stat_statements`: also when it is installed but not loaded by
    /// `shared_preload_libraries`).
    pub async fn server_activity(&self) -> StoreResult<ServerActivity> {
        let pool = &self.inner.pool;
        let pids = sqlx::query(include_str!("../queries/server/processes.sql"))
            .fetch_all(pool)
            .await
            .map_err(db("server_activity"))?
            .iter()
            .filter_map(|r| r.try_get::<i32, _>(0).ok())
            .filter_map(|pid| u32::try_from(pid).ok())
            .collect();
        let installed: bool =
            sqlx::query_scalar(include_str!("../queries/server/has_statements.sql"))
                .fetch_one(pool)
                .await
                .map_err(db("server_activity"))?;
        let statements = if installed {
            let n: i64 = sqlx::query_scalar(include_str!("../queries/server/statements.sql"))
                .fetch_one(pool)
                .await
                .map_err(db("server_activity"))?;
            Some(u64::try_from(n).unwrap_or_default())
        } else {
            None
        };
        Ok(ServerActivity { pids, statements })
    }
}
