//! [`NodeStore`] on PostgreSQL. Every write of a node row runs in a
//! transaction that first locks the row (`FOR UPDATE`), so a node's
//! heartbeat and its rescuer's beat never lose each other's update.

use capstan_core::{JobId, Lease, LeaseToken, NodeId, Timestamp};
use capstan_store::nodes::{
    DeregisterNode, HeartbeatNode, Held, NodeBeat, NodeInfo, RegisterNode, RegisterReport,
};
use capstan_store::{NodeStore, StoreResult};
use sqlx::{PgConnection, Row};

use crate::PgStore;
use crate::row::{self, db, ms};

/// A list of names as a `jsonb` parameter (sqlx encodes it; no fallback).
fn json(v: &[String]) -> sqlx::types::Json<&[String]> {
    sqlx::types::Json(v)
}

/// The database's time (or the pinned one) and the node's row, locked.
pub(crate) async fn read_node(
    conn: &mut PgConnection,
    node: &NodeId,
    now: Option<Timestamp>,
) -> StoreResult<(Timestamp, Option<NodeInfo>)> {
    let now: Timestamp = sqlx::query_scalar(include_str!("../queries/nodes/db_now.sql"))
        .bind(now)
        .fetch_one(&mut *conn)
        .await
        .map_err(db("read_node"))?;
    let row = sqlx::query(include_str!("../queries/nodes/read.sql"))
        .bind(node.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(db("read_node"))?;
    // The LEFT JOIN yields one row; a missing node leaves its columns null.
    let exists = row
        .try_get::<Option<String>, _>("id")
        .map_err(db("read_node"))?
        .is_some();
    Ok((now, exists.then(|| row::node(&row)).transpose()?))
}

/// Write `beat` as the node's row, beaten at `now`, healthy since `since`.
pub(crate) async fn write_node(
    conn: &mut PgConnection,
    beat: &HeartbeatNode,
    before: Option<&NodeInfo>,
    now: Timestamp,
    since: Timestamp,
) -> StoreResult<()> {
    let started = before
        .filter(|b| b.incarnation == beat.incarnation)
        .map_or(now, |b| b.started_at);
    sqlx::query(include_str!("../queries/nodes/write.sql"))
        .bind(beat.node.as_str())
        .bind(&beat.incarnation)
        .bind(json(&beat.queues))
        .bind(json(&beat.kinds))
        .bind(ms(beat.interval))
        .bind(started)
        .bind(now)
        .bind(ms(beat.timeout))
        .bind(since)
        .execute(&mut *conn)
        .await
        .map_err(db("write_node"))?;
    Ok(())
}

/// Jobs that waited for a node like `beat`'s go back in the claim order.
async fn mark_handled(conn: &mut PgConnection, beat: &HeartbeatNode) -> StoreResult<()> {
    sqlx::query(include_str!("../queries/nodes/mark_handled.sql"))
        .bind(json(&beat.queues))
        .bind(json(&beat.kinds))
        .execute(&mut *conn)
        .await
        .map_err(db("mark_handled"))?;
    Ok(())
}

impl NodeStore for PgStore {
    async fn register_node(&self, p: &RegisterNode) -> StoreResult<RegisterReport> {
        let mut tx = self.inner.beat.begin().await.map_err(db("register_node"))?;
        let (now, before) = read_node(&mut tx, &p.beat.node, p.beat.now).await?;
        p.check(before.as_ref(), now)?;
        // A new incarnation starts healthy now, and takes a fresh started_at.
        write_node(&mut tx, &p.beat, None, now, now).await?;
        mark_handled(&mut tx, &p.beat).await?;
        let reclaimed: i64 = sqlx::query(include_str!("../queries/nodes/reclaim_jobs.sql"))
            .bind(p.beat.node.as_str())
            .bind(p.beat.now)
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
        let mut tx = self
            .inner
            .beat
            .begin()
            .await
            .map_err(db("heartbeat_node"))?;
        let (now, before) = read_node(&mut tx, &p.node, p.now).await?;
        if before
            .as_ref()
            .is_some_and(|b| b.incarnation != p.incarnation)
        {
            return Ok(NodeBeat {
                replaced: true,
                ..NodeBeat::default()
            });
        }
        let since = p.healthy_since(before.as_ref(), now);
        write_node(&mut tx, p, before.as_ref(), now, since).await?;
        mark_handled(&mut tx, p).await?;
        let rows = sqlx::query(include_str!("../queries/nodes/held.sql"))
            .bind(p.node.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(db("heartbeat_node"))?;
        tx.commit().await.map_err(db("heartbeat_node"))?;
        let mut beat = NodeBeat {
            at: Some(now),
            revived: before.is_none(),
            healthy_since: Some(since),
            ..NodeBeat::default()
        };
        for r in &rows {
            beat.held.push(Held {
                lease: Lease {
                    job_id: JobId(r.try_get(0).map_err(db("heartbeat_node"))?),
                    token: LeaseToken(r.try_get(1).map_err(db("heartbeat_node"))?),
                },
                cancel_requested: r.try_get::<bool, _>(2).map_err(db("heartbeat_node"))?,
                claimed_at: r.try_get(3).map_err(db("heartbeat_node"))?,
            });
        }
        Ok(beat)
    }

    async fn deregister_node(&self, p: &DeregisterNode) -> StoreResult<()> {
        sqlx::query(include_str!("../queries/nodes/deregister.sql"))
            .bind(p.node.as_str())
            .bind(&p.incarnation)
            .execute(&self.inner.beat)
            .await
            .map_err(db("deregister_node"))?;
        Ok(())
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeInfo>> {
        let rows = sqlx::query(include_str!("../queries/nodes/list.sql"))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("list_nodes"))?;
        rows.iter().map(row::node).collect()
    }
}
