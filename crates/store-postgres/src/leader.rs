//! [`LeaderStore`] on PostgreSQL: one statement each (an upsert whose
//! conflict clause decides the bid), on the heartbeat pool, so that a busy
//! job pool does not delay a leader's re-election past its term.

use capstan_store::leader::{ElectLeader, ResignLeader};
use capstan_store::{LeaderStore, StoreResult};

use crate::PgStore;
use crate::row::{db, ms};

impl LeaderStore for PgStore {
    async fn elect_leader(&self, p: &ElectLeader) -> StoreResult<bool> {
        let won = sqlx::query(include_str!("../queries/leader/elect.sql"))
            .bind(p.node.as_str())
            .bind(&p.incarnation)
            .bind(ms(p.term))
            .bind(p.now)
            .fetch_optional(&self.inner.beat)
            .await
            .map_err(db("elect_leader"))?;
        Ok(won.is_some())
    }

    async fn resign_leader(&self, p: &ResignLeader) -> StoreResult<()> {
        sqlx::query(include_str!("../queries/leader/resign.sql"))
            .bind(p.node.as_str())
            .bind(&p.incarnation)
            .execute(&self.inner.beat)
            .await
            .map_err(db("resign_leader"))?;
        Ok(())
    }
}
