//! Rescue: give back the running jobs of dead nodes and expired leases, beating first as the rescuer.

use capstan_core::JobId;
use capstan_store::jobs::{Rescue, RescueReport};
use capstan_store::{Notification, StoreResult};
use sqlx::Row as _;

use crate::SqliteStore;
use crate::row::{self, LONG_AGO, db, micros, now_or_system, rfc3339};

pub(crate) async fn rescue(store: &SqliteStore, p: &Rescue) -> StoreResult<RescueReport> {
    let mut tx = store
        .inner
        .writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db("rescue"))?;
    // The time once the write lock is ours: a rescue that waited behind
    // another process's long write must not judge with the time before.
    let now = now_or_system(p.now);
    let mut healthy_since = LONG_AGO;
    if let Some(beat) = &p.rescuer {
        let before = crate::nodes::read_node(&mut tx, &beat.node).await?;
        if before
            .as_ref()
            .is_some_and(|b| b.incarnation != beat.incarnation)
        {
            // Another process holds this node id now: judge nothing.
            return Ok(RescueReport {
                stalled: true,
                ..RescueReport::default()
            });
        }
        let since = beat.healthy_since(before.as_ref(), now);
        crate::nodes::write_node(&mut tx, beat, before.as_ref(), now, since).await?;
        if before.as_ref().is_none_or(|b| b.healthy_since != since) {
            // This beat started our health over: our own writes were
            // stuck (or we were thought dead), so were everyone's.
            // Judge nobody until they had time to beat.
            tx.commit().await.map_err(db("rescue"))?;
            return Ok(RescueReport {
                stalled: true,
                healthy_since: Some(since),
                ..RescueReport::default()
            });
        }
        healthy_since = micros(since);
    }
    let rows = sqlx::query(include_str!("../../queries/jobs/rescue.sql"))
        .bind(micros(now))
        .bind(healthy_since)
        .bind(p.limit as i64)
        .bind(rfc3339(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(db("rescue"))?;
    let removed = sqlx::query(include_str!("../../queries/nodes/delete_dead.sql"))
        .bind(micros(now))
        .bind(healthy_since)
        .execute(&mut *tx)
        .await
        .map_err(db("rescue"))?
        .rows_affected();
    tx.commit().await.map_err(db("rescue"))?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok((
                JobId(r.try_get("id").map_err(db("rescue"))?),
                row::state(r)?,
                r.try_get::<String, _>("queue").map_err(db("rescue"))?,
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let mut report = RescueReport::from_rows(rows, removed);
    report.healthy_since = p.rescuer.as_ref().map(|_| row::from_micros(healthy_since));
    store.announce(Notification::jobs_in(
        report.queues.iter().map(String::as_str),
    ));
    Ok(report)
}
