//! Enqueue on SQLite: one job in one autocommit statement, a batch in one
//! `INSERT … SELECT FROM json_each(?)` inside a write transaction, with ids
//! assigned by the caller so the rows that hit an idempotency or dedupe key
//! are known without a round trip per job.

use std::collections::BTreeSet;

use capstan_core::{JobId, JobState, NewJob, Timestamp};
use capstan_store::jobs::{InsertMany, Inserted};
use capstan_store::{Notification, StoreError, StoreResult, StoreTx};
use serde::Serialize;
use sqlx::{Row as _, SqliteConnection};

use crate::SqliteStore;
use crate::row::{self, db, micros, ms, now_or_system};

/// One job of an insert batch, as `queries/jobs/insert.sql` reads it.
#[derive(Serialize)]
struct Row<'a> {
    queue: &'a str,
    kind: &'a str,
    args: &'a serde_json::Value,
    priority: i16,
    run_at: i64,
    max_attempts: i32,
    timeout_ms: Option<i64>,
    tags: &'a [String],
    idempotency_key: Option<&'a str>,
    dedupe_key: Option<&'a str>,
}

impl<'a> Row<'a> {
    fn new(job: &'a NewJob, now: Timestamp, default_max_attempts: i32) -> Self {
        // The delay is bounded by validation (at most 100 years), so the sum fits.
        let run_at = job.run_at.unwrap_or_else(|| {
            chrono::Duration::from_std(job.delay.unwrap_or_default())
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(now)
        });
        Row {
            queue: &job.queue,
            kind: &job.kind,
            args: &job.args,
            priority: job.priority,
            run_at: micros(run_at),
            max_attempts: job.max_attempts.unwrap_or(default_max_attempts),
            timeout_ms: job.timeout.map(ms),
            tags: &job.tags,
            idempotency_key: job.idempotency_key.as_deref(),
            dedupe_key: job.dedupe_key.as_deref(),
        }
    }
}

impl SqliteStore {
    /// Insert one or many jobs in one transaction (see the module docs).
    pub(crate) async fn insert(&self, p: &InsertMany) -> StoreResult<Vec<Inserted>> {
        if let [job] = p.jobs.as_slice() {
            job.validate()?;
            let inserted = vec![self.insert_one(job, p).await?];
            self.announce(notifications(p, &inserted));
            return Ok(inserted);
        }
        let mut tx = self.begin_tx("insert_many").await?;
        let inserted = tx.insert_many(p).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// One job in one autocommit statement (plus a look-up when it hits a key).
    async fn insert_one(&self, job: &NewJob, p: &InsertMany) -> StoreResult<Inserted> {
        let now = now_or_system(p.now);
        let row = Row::new(job, now, p.default_max_attempts);
        let args = capstan_store::jobs::encode("insert_many", row.args)?;
        let tags = capstan_store::jobs::encode("insert_many", &row.tags)?;
        let mut conn = self
            .inner
            .writer
            .acquire()
            .await
            .map_err(db("insert_many"))?;
        for _ in 0..3 {
            let inserted = sqlx::query(include_str!("../../queries/jobs/insert_one.sql"))
                .bind(row.queue)
                .bind(row.kind)
                .bind(&args)
                .bind(i64::from(row.priority))
                .bind(row.run_at)
                .bind(i64::from(row.max_attempts))
                .bind(row.timeout_ms)
                .bind(&tags)
                .bind(row.idempotency_key)
                .bind(row.dedupe_key)
                .bind(micros(now))
                .fetch_optional(&mut *conn)
                .await
                .map_err(db("insert_many"))?;
            let (r, existing) = match inserted {
                Some(r) => (r, false),
                None => match sqlx::query(include_str!("../../queries/jobs/insert_existing.sql"))
                    .bind(row.idempotency_key)
                    .bind(row.dedupe_key)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db("insert_many"))?
                {
                    Some(r) => (r, true),
                    // The key's holder vanished in between (deleted, claimed): again.
                    None => continue,
                },
            };
            return Ok(Inserted {
                id: JobId(r.try_get("id").map_err(db("insert_many"))?),
                state: row::state(&r)?,
                existing,
            });
        }
        Err(StoreError::Contention {
            operation: "insert_many",
            what: "a job's idempotency or dedupe key",
        })
    }
}

/// Insert a batch inside a write transaction begun with `BEGIN IMMEDIATE`:
/// the new ids follow the last id given, which only the write lock holds
/// still (under a plain `BEGIN` a concurrent writer makes this fail with
/// `SQLITE_BUSY`, never corrupt anything). Validates every job first.
pub(crate) async fn insert_in(
    conn: &mut SqliteConnection,
    p: &InsertMany,
) -> StoreResult<Vec<Inserted>> {
    for job in &p.jobs {
        job.validate()?;
    }
    if p.jobs.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_or_system(p.now);
    let rows: Vec<Row<'_>> = p
        .jobs
        .iter()
        .map(|job| Row::new(job, now, p.default_max_attempts))
        .collect();
    let last: i64 = sqlx::query_scalar(include_str!("../../queries/jobs/last_id.sql"))
        .fetch_one(&mut *conn)
        .await
        .map_err(db("insert_many"))?;
    let payload = capstan_store::jobs::encode("insert_many", &rows)?;
    let written = sqlx::query(include_str!("../../queries/jobs/insert.sql"))
        .bind(payload)
        .bind(micros(now))
        .bind(last)
        .fetch_all(&mut *conn)
        .await
        .map_err(db("insert_many"))?;
    let mut states = std::collections::HashMap::with_capacity(written.len());
    for r in &written {
        states.insert(
            r.try_get::<i64, _>("id").map_err(db("insert_many"))?,
            row::state(r)?,
        );
    }
    let mut out = Vec::with_capacity(p.jobs.len());
    for (i, job) in p.jobs.iter().enumerate() {
        let id = last + i as i64 + 1;
        if let Some(state) = states.get(&id) {
            out.push(Inserted {
                id: JobId(id),
                state: *state,
                existing: false,
            });
            continue;
        }
        // It hit a key: answer with the job that holds it (which may be
        // one inserted earlier in this very batch).
        let r = sqlx::query(include_str!("../../queries/jobs/insert_existing.sql"))
            .bind(job.idempotency_key.as_deref())
            .bind(job.dedupe_key.as_deref())
            .fetch_one(&mut *conn)
            .await
            .map_err(db("insert_many"))?;
        out.push(Inserted {
            id: JobId(r.try_get("id").map_err(db("insert_many"))?),
            state: row::state(&r)?,
            existing: true,
        });
    }
    Ok(out)
}

/// What an insert announces: the queues that got available jobs, and "look
/// again" for a scheduler sleeping until the next due job when it added one.
pub(crate) fn notifications(jobs: &InsertMany, inserted: &[Inserted]) -> Vec<Notification> {
    let queues: BTreeSet<&str> = jobs
        .jobs
        .iter()
        .zip(inserted)
        .filter(|(_, i)| !i.existing && i.state == JobState::Available)
        .map(|(j, _)| j.queue.as_str())
        .collect();
    let mut out: Vec<Notification> = Notification::jobs_in(queues).into_iter().collect();
    if inserted
        .iter()
        .any(|i| !i.existing && i.state == JobState::Scheduled)
    {
        out.push(Notification::jobs_anywhere());
    }
    out
}
