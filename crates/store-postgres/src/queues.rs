//! [`QueueStore`] on PostgreSQL.

use capstan_store::queues::QueueCounts;
use capstan_store::{QueueStore, StoreResult};
use sqlx::Row;

use crate::PgStore;
use crate::row::db;

impl QueueStore for PgStore {
    async fn queue_counts(&self) -> StoreResult<Vec<QueueCounts>> {
        let rows = sqlx::query(include_str!("../queries/queues/counts.sql"))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("queue_counts"))?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("queue")?,
                    r.try_get("state")?,
                    r.try_get("n")?,
                    r.try_get("unhandled")?,
                ))
            })
            .collect::<Result<Vec<(String, String, i64, i64)>, sqlx::Error>>()
            .map_err(db("queue_counts"))?;
        QueueCounts::from_rows(rows)
    }

    async fn delete_queue(&self, queue: &str) -> StoreResult<u64> {
        Ok(sqlx::query(include_str!("../queries/queues/delete.sql"))
            .bind(queue)
            .execute(&self.inner.pool)
            .await
            .map_err(db("delete_queue"))?
            .rows_affected())
    }
}
