//! [`NodeStore`] on SQLite.

use capstan_core::{JobId, NodeId};
use capstan_store::{
    HeartbeatNode, NodeBeat, NodeInfo, NodeStore, RegisterNode, RegisterReport, StoreError,
    StoreResult, Wakeup,
};
use sqlx::Row;

use crate::SqliteStore;
use crate::row::{db, from_micros, micros, now_or_system, rfc3339};

impl NodeStore for SqliteStore {
    async fn register_node(&self, p: &RegisterNode) -> StoreResult<RegisterReport> {
        let now = now_or_system(p.now);
        let queues = serde_json::to_string(&p.queues).unwrap_or_else(|_| "[]".into());
        let mut tx = self
            .inner
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("register_node"))?;
        sqlx::query(include_str!("../queries/register_node.sql"))
            .bind(p.node.as_str())
            .bind(queues)
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(db("register_node"))?;
        let rows = sqlx::query(include_str!("../queries/reclaim_node_jobs.sql"))
            .bind(p.node.as_str())
            .bind(micros(now))
            .bind(rfc3339(now))
            .fetch_all(&mut *tx)
            .await
            .map_err(db("register_node"))?;
        tx.commit().await.map_err(db("register_node"))?;
        if !rows.is_empty() {
            self.hub().send(Wakeup::All);
        }
        Ok(RegisterReport {
            reclaimed: rows.len() as u64,
        })
    }

    async fn heartbeat_node(&self, p: &HeartbeatNode) -> StoreResult<NodeBeat> {
        let now = micros(now_or_system(p.now));
        sqlx::query(include_str!("../queries/heartbeat_node.sql"))
            .bind(p.node.as_str())
            .bind(now)
            .execute(&self.inner.writer)
            .await
            .map_err(db("heartbeat_node"))?;
        let rows = sqlx::query(include_str!("../queries/cancel_requests.sql"))
            .bind(p.node.as_str())
            .fetch_all(&self.inner.reader)
            .await
            .map_err(db("heartbeat_node"))?;
        let cancel_requested = rows
            .iter()
            .map(|r| Ok((JobId(r.try_get(0)?), r.try_get::<i64, _>(1)? as i32)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("heartbeat_node"))?;
        Ok(NodeBeat { cancel_requested })
    }

    async fn deregister_node(&self, node: &NodeId) -> StoreResult<()> {
        sqlx::query(include_str!("../queries/deregister_node.sql"))
            .bind(node.as_str())
            .execute(&self.inner.writer)
            .await
            .map_err(db("deregister_node"))?;
        Ok(())
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeInfo>> {
        let rows = sqlx::query(include_str!("../queries/list_nodes.sql"))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(db("list_nodes"))?;
        rows.iter()
            .map(|r| {
                let queues: String = r.try_get("queues").map_err(db("list_nodes"))?;
                Ok(NodeInfo {
                    id: NodeId(r.try_get("id").map_err(db("list_nodes"))?),
                    queues: serde_json::from_str(&queues).map_err(|e| StoreError::Corrupt {
                        table: "capstan_nodes",
                        message: format!("queues: {e}"),
                    })?,
                    started_at: from_micros(r.try_get("started_at").map_err(db("list_nodes"))?),
                    heartbeat_at: from_micros(r.try_get("heartbeat_at").map_err(db("list_nodes"))?),
                })
            })
            .collect()
    }
}
