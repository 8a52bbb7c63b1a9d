//! Rescue: give back the running jobs of dead nodes and expired leases, beating first as the rescuer.

use capstan_core::{JobId, JobState};
use capstan_store::jobs::{Rescue, RescueReport};
use capstan_store::{StoreError, StoreResult};
use serde_json::Value;
use sqlx::Row;

use crate::PgStore;
use crate::row::db;

pub(crate) async fn rescue(store: &PgStore, p: &Rescue) -> StoreResult<RescueReport> {
    let mut tx = store.inner.beat.begin().await.map_err(db("rescue"))?;
    let mut healthy_since = None;
    if let Some(beat) = &p.rescuer {
        let (now, before) = crate::nodes::read_node(&mut tx, &beat.node, beat.now).await?;
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
        healthy_since = Some(since);
    }
    let r = sqlx::query(include_str!("../../queries/jobs/rescue.sql"))
        .bind(p.now)
        .bind(healthy_since)
        .bind(p.limit as i64)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("rescue"))?;
    tx.commit().await.map_err(db("rescue"))?;
    let rescued: Value = r.try_get("rescued").map_err(db("rescue"))?;
    let removed: i64 = r.try_get("removed").map_err(db("rescue"))?;
    let rows: Vec<(i64, String, String)> =
        serde_json::from_value(rescued).map_err(|e| StoreError::Corrupt {
            table: "capstan.jobs",
            message: format!("rescue report: {e}"),
        })?;
    let rows = rows
        .into_iter()
        .map(|(id, state, queue)| {
            let state: JobState = state.parse().map_err(|e| StoreError::Corrupt {
                table: "capstan.jobs",
                message: format!("state: {e}"),
            })?;
            Ok((JobId(id), state, queue))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let mut report = RescueReport::from_rows(rows, removed as u64);
    report.healthy_since = healthy_since;
    Ok(report)
}
