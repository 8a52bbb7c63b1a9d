//! The PostgreSQL harness: a fresh database per case, in one throwaway
//! cluster per test process (see [`cluster`]) or in the server named by
//! `CAPSTAN_TEST_DATABASE_URL`.

pub mod cluster;

use capstan_core::ManualClock;
use capstan_store::Store;
use capstan_store_postgres::{PgStore, PgTx};

pub use cluster::{Cluster, TestDatabase};

use crate::{Harness, RowLock};

/// A migrated PostgreSQL database for one case.
#[derive(Debug)]
pub struct PgHarness {
    store: PgStore,
    clock: ManualClock,
    db: TestDatabase,
}

impl Harness for PgHarness {
    type Store = PgStore;

    async fn new(test: &str) -> Self {
        let db = TestDatabase::create(test).await;
        let store = PgStore::connect(db.url())
            .await
            .unwrap_or_else(|e| panic!("connect to test database: {e}"));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate test database: {e}"));
        PgHarness {
            store,
            clock: ManualClock::starting_now(),
            db,
        }
    }

    fn store(&self) -> &PgStore {
        &self.store
    }

    fn clock(&self) -> &ManualClock {
        &self.clock
    }

    async fn connect_again(&self) -> PgStore {
        PgStore::connect(self.db.url())
            .await
            .unwrap_or_else(|e| panic!("connect to test database: {e}"))
    }

    async fn execute_in(tx: &mut PgTx<'static>, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut **tx)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn url(&self) -> String {
        self.db.url().to_owned()
    }

    fn table(&self, name: &str) -> String {
        format!("capstan.{name}")
    }

    async fn execute(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(self.store.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.store.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn lock_job(&self, id: capstan_core::JobId) -> Option<RowLock> {
        let mut tx = self.store.pool().begin().await.expect("begin");
        sqlx::query("SELECT id FROM capstan.jobs WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await
            .expect("lock the job's row");
        Some(RowLock::new(move || {
            Box::pin(async move {
                tx.rollback().await.expect("roll back the row lock");
            })
        }))
    }
}
