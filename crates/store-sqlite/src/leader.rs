//! [`LeaderStore`] on SQLite: one statement each, on the one writer, so a
//! bid is atomic against every other process on the file.

use capstan_store::leader::{ElectLeader, ResignLeader};
use capstan_store::{LeaderStore, StoreResult};

use crate::SqliteStore;
use crate::row::{db, micros, ms, now_or_system};

impl LeaderStore for SqliteStore {
    async fn elect_leader(&self, p: &ElectLeader) -> StoreResult<bool> {
        let won = sqlx::query(include_str!("../queries/leader/elect.sql"))
            .bind(p.node.as_str())
            .bind(&p.incarnation)
            .bind(ms(p.term))
            .bind(micros(now_or_system(p.now)))
            .fetch_optional(&self.inner.writer)
            .await
            .map_err(db("elect_leader"))?;
        Ok(won.is_some())
    }

    async fn resign_leader(&self, p: &ResignLeader) -> StoreResult<()> {
        sqlx::query(include_str!("../queries/leader/resign.sql"))
            .bind(p.node.as_str())
            .bind(&p.incarnation)
            .execute(&self.inner.writer)
            .await
            .map_err(db("resign_leader"))?;
        Ok(())
    }
}
