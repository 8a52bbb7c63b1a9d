//! [`NodeStore`] on SQLite. Every write of a node row runs in one
//! `BEGIN IMMEDIATE` transaction that reads the row first, and takes its time
//! once the write lock is held: a beat that waited behind another process's
//! long write is dated after the wait, so the wait shows as a stall.

use capstan_core::{JobId, Lease, LeaseToken, NodeId, Timestamp};
use capstan_store::nodes::{
    DeregisterNode, HeartbeatNode, Held, NodeBeat, NodeInfo, RegisterNode, RegisterReport,
};
use capstan_store::{NodeStore, Notification, StoreResult};
use sqlx::{Row, SqliteConnection};

use crate::SqliteStore;
use crate::row::{self, db, micros, ms, now_or_system, rfc3339};

/// A list of names as a JSON parameter (sqlx encodes it; no fallback).
fn json(v: &[String]) -> sqlx::types::Json<&[String]> {
    sqlx::types::Json(v)
}

/// The node's row, if any.
pub(crate) async fn read_node(
    conn: &mut SqliteConnection,
    node: &NodeId,
) -> StoreResult<Option<NodeInfo>> {
    sqlx::query(include_str!("../queries/nodes/read.sql"))
        .bind(node.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("read_node"))?
        .as_ref()
        .map(row::node)
        .transpose()
}

/// Write `beat` as the node's row, beaten at `now`, healthy since `since`.
pub(crate) async fn write_node(
    conn: &mut SqliteConnection,
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
        .bind(micros(started))
        .bind(micros(now))
        .bind(ms(beat.timeout))
        .bind(micros(since))
        .execute(&mut *conn)
        .await
        .map_err(db("write_node"))?;
    Ok(())
}

/// Jobs that waited for a node like `beat`'s go back in the claim order;
/// returns the queues to wake.
async fn mark_handled(
    conn: &mut SqliteConnection,
    beat: &HeartbeatNode,
) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(include_str!("../queries/nodes/mark_handled.sql"))
        .bind(json(&beat.queues))
        .bind(json(&beat.kinds))
        .fetch_all(&mut *conn)
        .await
        .map_err(db("mark_handled"))?;
    let mut queues: Vec<String> = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(db("mark_handled"))?;
    queues.sort();
    queues.dedup();
    Ok(queues)
}

impl SqliteStore {
    fn wake_queues(&self, queues: Vec<String>) {
        self.announce(Notification::jobs_in(queues.iter().map(String::as_str)));
    }
}

impl NodeStore for SqliteStore {
    async fn register_node(&self, p: &RegisterNode) -> StoreResult<RegisterReport> {
        let mut tx = self
            .inner
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("register_node"))?;
        let now = now_or_system(p.beat.now);
        let before = read_node(&mut tx, &p.beat.node).await?;
        p.check(before.as_ref(), now)?;
        // A new incarnation starts healthy now, and takes a fresh started_at.
        write_node(&mut tx, &p.beat, None, now, now).await?;
        let woken = mark_handled(&mut tx, &p.beat).await?;
        let rows = sqlx::query(include_str!("../queries/nodes/reclaim_jobs.sql"))
            .bind(p.beat.node.as_str())
            .bind(micros(now))
            .bind(rfc3339(now))
            .fetch_all(&mut *tx)
            .await
            .map_err(db("register_node"))?;
        tx.commit().await.map_err(db("register_node"))?;
        if !rows.is_empty() {
            self.announce([Notification::jobs_anywhere()]);
        }
        self.wake_queues(woken);
        Ok(RegisterReport {
            reclaimed: rows.len() as u64,
        })
    }

    async fn heartbeat_node(&self, p: &HeartbeatNode) -> StoreResult<NodeBeat> {
        let mut tx = self
            .inner
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("heartbeat_node"))?;
        let now = now_or_system(p.now);
        let before = read_node(&mut tx, &p.node).await?;
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
        let woken = mark_handled(&mut tx, p).await?;
        let rows = sqlx::query(include_str!("../queries/nodes/held.sql"))
            .bind(p.node.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(db("heartbeat_node"))?;
        tx.commit().await.map_err(db("heartbeat_node"))?;
        self.wake_queues(woken);
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
                cancel_requested: r.try_get::<i64, _>(2).map_err(db("heartbeat_node"))? != 0,
                claimed_at: crate::row::from_micros(r.try_get(3).map_err(db("heartbeat_node"))?),
            });
        }
        Ok(beat)
    }

    async fn deregister_node(&self, p: &DeregisterNode) -> StoreResult<()> {
        sqlx::query(include_str!("../queries/nodes/deregister.sql"))
            .bind(p.node.as_str())
            .bind(&p.incarnation)
            .execute(&self.inner.writer)
            .await
            .map_err(db("deregister_node"))?;
        Ok(())
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeInfo>> {
        let rows = sqlx::query(include_str!("../queries/nodes/list.sql"))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(db("list_nodes"))?;
        rows.iter().map(row::node).collect()
    }
}
