//! The SQLite harness: a temporary database file per case.

use capstan_core::ManualClock;
use capstan_store::Store;
use capstan_store_sqlite::{SqliteStore, SqliteTx};

use crate::{Harness, RowLock, TempDir};

/// A migrated SQLite file in a temp dir, removed when the case ends.
#[derive(Debug)]
pub struct SqliteHarness {
    store: SqliteStore,
    clock: ManualClock,
    url: String,
    _dir: TempDir,
}

impl Harness for SqliteHarness {
    type Store = SqliteStore;

    async fn new(test: &str) -> Self {
        let dir = TempDir::new(test);
        let url = format!("sqlite://{}", dir.path().join("capstan.db").display());
        let store = SqliteStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate {url}: {e}"));
        SqliteHarness {
            store,
            clock: ManualClock::starting_now(),
            url,
            _dir: dir,
        }
    }

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn clock(&self) -> &ManualClock {
        &self.clock
    }

    async fn connect_again(&self) -> SqliteStore {
        SqliteStore::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }

    async fn execute_in(tx: &mut SqliteTx<'static>, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut **tx)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    fn table(&self, name: &str) -> String {
        format!("capstan_{name}")
    }

    async fn execute(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(self.store.writer())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.store.writer())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn lock_job(&self, _id: capstan_core::JobId) -> Option<RowLock> {
        None
    }
}
