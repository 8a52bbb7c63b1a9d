//! Claim: take a batch of available jobs for a node under fresh lease tokens, in claim order; an unreadable row is failed alone.

use capstan_core::Job;
use capstan_store::jobs::{Claim, FinishMany, sort_in_claim_order};
use capstan_store::{JobStore, StoreResult};

use crate::SqliteStore;
use crate::row::{self, db, micros, ms, now_or_system};

pub(crate) async fn claim(store: &SqliteStore, p: &Claim) -> StoreResult<Vec<Job>> {
    if p.limit == 0 {
        return Ok(Vec::new());
    }
    let now = micros(now_or_system(p.now));
    let kinds = p
        .kinds
        .as_ref()
        .map(|k| capstan_store::jobs::encode("claim", k))
        .transpose()?;
    let rows = sqlx::query(include_str!("../../queries/jobs/claim.sql"))
        .bind(&p.queue)
        .bind(kinds)
        .bind(p.limit as i64)
        .bind(p.node.as_str())
        .bind(now)
        .bind(ms(p.default_timeout))
        .bind(ms(p.lease_grace))
        .bind(capstan_core::LeaseToken::generate().0)
        .bind(p.after.map(|k| k.priority))
        .bind(p.after.map(|k| micros(k.run_at)))
        .bind(p.after.map(|k| k.id.0))
        .fetch_all(&store.inner.writer)
        .await
        .map_err(db("claim"))?;
    let mut jobs = Vec::with_capacity(rows.len());
    let mut corrupt = Vec::new();
    for r in &rows {
        match row::job(r) {
            Ok(job) => jobs.push(job),
            Err(e) => corrupt.push(capstan_store::jobs::fail_corrupt(row::lease(r)?, &e)),
        }
    }
    if !corrupt.is_empty() {
        for f in &corrupt {
            tracing::error!(lease = %f.lease, "a claimed job's row could not be read; failing it alone");
        }
        let p = FinishMany {
            finishes: corrupt,
            now: p.now,
        };
        if let Err(e) = store.finish_many(&p).await {
            tracing::error!(error = %e, "could not fail the unreadable rows; they will be rescued when their leases expire");
        }
    }
    sort_in_claim_order(&mut jobs);
    Ok(jobs)
}
