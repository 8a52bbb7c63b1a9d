//! Claim: take a batch of available jobs for a node under fresh lease tokens, in claim order; an unreadable row is failed alone.

use capstan_core::Job;
use capstan_store::StoreResult;
use capstan_store::jobs::{Claim, sort_in_claim_order};

use super::ms;
use crate::PgStore;
use crate::row::{self, db};

pub(crate) async fn claim(store: &PgStore, p: &Claim) -> StoreResult<Vec<Job>> {
    if p.limit == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(include_str!("../../queries/jobs/claim.sql"))
        .bind(&p.queue)
        .bind(p.kinds.as_deref())
        .bind(p.limit.min(i32::MAX as u32) as i32)
        .bind(p.node.as_str())
        .bind(p.now)
        .bind(ms(p.default_timeout))
        .bind(ms(p.lease_grace))
        .bind(capstan_core::LeaseToken::generate().0)
        .bind(p.after.map(|k| k.priority))
        .bind(p.after.map(|k| k.run_at))
        .bind(p.after.map(|k| k.id.0))
        .fetch_all(&store.inner.pool)
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
        store.finish_corrupt(corrupt, p.now).await;
    }
    sort_in_claim_order(&mut jobs);
    Ok(jobs)
}
