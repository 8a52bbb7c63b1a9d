//! Enqueue on PostgreSQL: one statement per batch (`jsonb_array_elements`
//! with ids drawn from the sequence up front, `ON CONFLICT DO NOTHING`, one
//! NOTIFY), then a look-up for the jobs that hit a key.

use capstan_core::JobId;
use capstan_store::jobs::{InsertMany, InsertRow, Inserted};
use capstan_store::{StoreError, StoreResult};
use sqlx::{PgConnection, Row};

use crate::PgStore;
use crate::row::{self, db};

/// How many times a conflicting insert whose twin vanished (deleted or
/// claimed between the insert and the look-up) is tried again.
const INSERT_RETRIES: usize = 5;

impl PgStore {
    /// Insert jobs in a transaction of their own: every job of the batch is
    /// written, or none. A deadlock or serialization failure with another
    /// batch is retried (a few times) from the start.
    pub(crate) async fn insert(&self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        if p.jobs
            .iter()
            .all(|j| j.idempotency_key.is_none() && j.dedupe_key.is_none())
        {
            // Without keys nothing can conflict: one statement, atomic by
            // itself, and one round trip.
            let mut conn = self.inner.pool.acquire().await.map_err(db("insert_many"))?;
            return insert_in(&mut conn, p).await;
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let mut tx = self.inner.pool.begin().await.map_err(db("insert_many"))?;
            match insert_in(&mut tx, p).await {
                // Not committed: nothing of it exists, so trying again is safe.
                Err(e) if e.is_transient() && tries < 3 => continue,
                Err(e) => return Err(e),
                // A failed commit is not retried: it may have committed.
                Ok(inserted) => {
                    tx.commit().await.map_err(db("insert_many"))?;
                    return Ok(inserted);
                }
            }
        }
    }
}

/// Insert jobs on `conn` (inside a transaction, or alone when no job has a
/// key): they exist only once it commits, and the NOTIFY that wakes workers
/// goes out at that commit. Validates every job first.
pub(crate) async fn insert_in(
    conn: &mut PgConnection,
    p: &InsertMany,
) -> StoreResult<Vec<Inserted>> {
    for job in &p.jobs {
        job.validate()?;
    }
    let mut out: Vec<Option<Inserted>> = vec![None; p.jobs.len()];
    let mut pending: Vec<usize> = (0..p.jobs.len()).collect();
    for _ in 0..INSERT_RETRIES {
        if pending.is_empty() {
            break;
        }
        let rows: Vec<InsertRow<'_>> = pending
            .iter()
            .map(|&i| InsertRow::new(&p.jobs[i], p.default_max_attempts))
            .collect();
        let payload = serde_json::to_value(&rows).map_err(|source| StoreError::Encode {
            operation: "insert_many",
            source,
        })?;
        let results = sqlx::query(include_str!("../../queries/jobs/insert.sql"))
            .bind(payload)
            .bind(p.now)
            .fetch_all(&mut *conn)
            .await
            .map_err(db("insert_many"))?;
        let mut conflicts = Vec::new();
        for (&i, r) in pending.iter().zip(&results) {
            let inserted: bool = r.try_get("inserted").map_err(db("insert_many"))?;
            if inserted {
                out[i] = Some(Inserted {
                    id: JobId(r.try_get("id").map_err(db("insert_many"))?),
                    state: row::state(r)?,
                    existing: false,
                });
            } else {
                conflicts.push(i);
            }
        }
        let mut again = Vec::new();
        for i in conflicts {
            let job = &p.jobs[i];
            let existing = sqlx::query(include_str!("../../queries/jobs/insert_existing.sql"))
                .bind(job.idempotency_key.as_deref())
                .bind(job.dedupe_key.as_deref())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db("insert_many"))?;
            match existing {
                Some(r) => {
                    out[i] = Some(Inserted {
                        id: JobId(r.try_get("id").map_err(db("insert_many"))?),
                        state: row::state(&r)?,
                        existing: true,
                    })
                }
                None => again.push(i),
            }
        }
        pending = again;
    }
    out.into_iter()
        .map(|o| {
            o.ok_or(StoreError::Contention {
                operation: "insert_many",
                what: "a job's idempotency or dedupe key",
            })
        })
        .collect()
}
