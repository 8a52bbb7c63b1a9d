//! [`NodeStore`] on PostgreSQL.

use capstan_core::{JobId, NodeId};
use capstan_store::{
    HeartbeatNode, NodeBeat, NodeInfo, NodeStore, RegisterNode, RegisterReport, StoreError,
    StoreResult,
};
use serde_json::Value;
use sqlx::Row;

use crate::PgStore;
use crate::row::db;

impl NodeStore for PgStore {
    async fn register_node(&self, p: &RegisterNode) -> StoreResult<RegisterReport> {
        let mut tx = self.inner.pool.begin().await.map_err(db("register_node"))?;
        sqlx::query(include_str!("../queries/register_node.sql"))
            .bind(p.node.as_str())
            .bind(serde_json::to_value(&p.queues).unwrap_or_default())
            .bind(p.now)
            .execute(&mut *tx)
            .await
            .map_err(db("register_node"))?;
        let reclaimed: i64 = sqlx::query(include_str!("../queries/reclaim_node_jobs.sql"))
            .bind(p.node.as_str())
            .bind(p.now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db("register_node"))?
            .try_get("n")
            .map_err(db("register_node"))?;
        tx.commit().await.map_err(db("register_node"))?;
        Ok(RegisterReport {
            reclaimed: reclaimed as u64,
        })
    }

    async fn heartbeat_node(&self, p: &HeartbeatNode) -> StoreResult<NodeBeat> {
        sqlx::query(include_str!("../queries/heartbeat_node.sql"))
            .bind(p.node.as_str())
            .bind(p.now)
            .execute(&self.inner.pool)
            .await
            .map_err(db("heartbeat_node"))?;
        let rows = sqlx::query(include_str!("../queries/cancel_requests.sql"))
            .bind(p.node.as_str())
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("heartbeat_node"))?;
        let cancel_requested = rows
            .iter()
            .map(|r| Ok((JobId(r.try_get(0)?), r.try_get::<i32, _>(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("heartbeat_node"))?;
        Ok(NodeBeat { cancel_requested })
    }

    async fn deregister_node(&self, node: &NodeId) -> StoreResult<()> {
        sqlx::query(include_str!("../queries/deregister_node.sql"))
            .bind(node.as_str())
            .execute(&self.inner.pool)
            .await
            .map_err(db("deregister_node"))?;
        Ok(())
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeInfo>> {
        let rows = sqlx::query(include_str!("../queries/list_nodes.sql"))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("list_nodes"))?;
        rows.iter()
            .map(|r| {
                let queues: Value = r.try_get("queues").map_err(db("list_nodes"))?;
                Ok(NodeInfo {
                    id: NodeId(r.try_get("id").map_err(db("list_nodes"))?),
                    queues: serde_json::from_value(queues).map_err(|e| StoreError::Corrupt {
                        table: "capstan.nodes",
                        message: format!("queues: {e}"),
                    })?,
                    started_at: r.try_get("started_at").map_err(db("list_nodes"))?,
                    heartbeat_at: r.try_get("heartbeat_at").map_err(db("list_nodes"))?,
                })
            })
            .collect()
    }
}
