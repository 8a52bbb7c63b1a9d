//! [`QueueStore`] on PostgreSQL.

use std::collections::BTreeMap;

use capstan_core::JobState;
use capstan_store::{QueueCounts, QueueStore, StoreError, StoreResult};
use sqlx::Row;

use crate::PgStore;
use crate::row::db;

impl QueueStore for PgStore {
    async fn queue_counts(&self) -> StoreResult<Vec<QueueCounts>> {
        let rows = sqlx::query(include_str!("../queries/queue_counts.sql"))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("queue_counts"))?;
        let mut by_queue: BTreeMap<String, QueueCounts> = BTreeMap::new();
        for r in &rows {
            let queue: String = r.try_get("queue").map_err(db("queue_counts"))?;
            let state: String = r.try_get("state").map_err(db("queue_counts"))?;
            let n: i64 = r.try_get("n").map_err(db("queue_counts"))?;
            let state: JobState = state.parse().map_err(|e| StoreError::Corrupt {
                table: "capstan.jobs",
                message: format!("state: {e}"),
            })?;
            by_queue
                .entry(queue.clone())
                .or_insert_with(|| QueueCounts {
                    queue,
                    ..QueueCounts::default()
                })
                .add(state, n as u64);
        }
        Ok(by_queue.into_values().collect())
    }

    async fn delete_queue(&self, queue: &str) -> StoreResult<u64> {
        Ok(sqlx::query(include_str!("../queries/delete_queue.sql"))
            .bind(queue)
            .execute(&self.inner.pool)
            .await
            .map_err(db("delete_queue"))?
            .rows_affected())
    }
}
