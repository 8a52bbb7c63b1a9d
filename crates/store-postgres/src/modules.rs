//! [`ModuleStore`] on PostgreSQL: each operation one statement on the main
//! pool; the lock is an upsert whose conflict clause decides, the finish an
//! UPDATE fenced by version and owner (see the query files).

use capstan_store::modules::{
    EntryStatus, FinishRefresh, InvalidateEntries, ListEntries, LockOutcome, LockRefresh,
    ModuleEntry, PutEntry, ReadEntry,
};
use capstan_store::{ModuleStore, StoreError, StoreResult};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::PgStore;
use crate::row::{db, ms};

fn corrupt(message: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "capstan.module_entries",
        message: message.to_string(),
    }
}

fn entry(row: &PgRow) -> StoreResult<ModuleEntry> {
    let get = |e: sqlx::Error| corrupt(e);
    let status: String = row.try_get("status").map_err(get)?;
    Ok(ModuleEntry {
        module: row.try_get("module").map_err(get)?,
        key: row.try_get("key").map_err(get)?,
        status: status.parse::<EntryStatus>().map_err(corrupt)?,
        value: row.try_get("value").map_err(get)?,
        fetched_at: row.try_get("fetched_at").map_err(get)?,
        fresh_until: row.try_get("fresh_until").map_err(get)?,
        stale_until: row.try_get("stale_until").map_err(get)?,
        error: row.try_get("error").map_err(get)?,
        failures: u32::try_from(row.try_get::<i32, _>("failures").map_err(get)?).unwrap_or(0),
        retry_at: row.try_get("retry_at").map_err(get)?,
        refresh_ms: row
            .try_get::<Option<i64>, _>("refresh_ms")
            .map_err(get)?
            .and_then(|m| u64::try_from(m).ok()),
        version: row.try_get("version").map_err(get)?,
        lock_owner: row.try_get("lock_owner").map_err(get)?,
        lock_until: row.try_get("lock_until").map_err(get)?,
        updated_at: row.try_get("updated_at").map_err(get)?,
    })
}

impl ModuleStore for PgStore {
    async fn read_entry(&self, p: &ReadEntry) -> StoreResult<Option<ModuleEntry>> {
        let row = sqlx::query(include_str!("../queries/modules/read.sql"))
            .bind(&p.module)
            .bind(&p.key)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(db("read_entry"))?;
        row.as_ref().map(entry).transpose()
    }

    async fn lock_refresh(&self, p: &LockRefresh) -> StoreResult<LockOutcome> {
        let row = sqlx::query(include_str!("../queries/modules/lock.sql"))
            .bind(&p.module)
            .bind(&p.key)
            .bind(&p.owner)
            .bind(ms(p.lease))
            .bind(p.fresh_enough)
            .bind(p.force)
            .bind(p.now)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(db("lock_refresh"))?;
        let locked = row.as_ref().map(entry).transpose()?;
        LockOutcome::of(
            locked,
            "capstan.module_entries",
            self.read_entry(&ReadEntry {
                module: p.module.clone(),
                key: p.key.clone(),
            }),
        )
        .await
    }

    async fn finish_refresh(&self, p: &FinishRefresh) -> StoreResult<Option<ModuleEntry>> {
        let c = p.outcome.columns();
        let row = sqlx::query(include_str!("../queries/modules/finish.sql"))
            .bind(&p.module)
            .bind(&p.key)
            .bind(p.version)
            .bind(&p.owner)
            .bind(c.status)
            .bind(c.value.map(sqlx::types::Json::<&Value>))
            .bind(c.fresh_ms)
            .bind(c.stale_ms)
            .bind(c.error)
            .bind(c.retry_ms)
            .bind(ms(p.took))
            .bind(p.now)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(db("finish_refresh"))?;
        row.as_ref().map(entry).transpose()
    }

    async fn put_entry(&self, p: &PutEntry) -> StoreResult<ModuleEntry> {
        let row = sqlx::query(include_str!("../queries/modules/put.sql"))
            .bind(&p.module)
            .bind(&p.key)
            .bind(sqlx::types::Json(&p.value))
            .bind(ms(p.fresh_for))
            .bind(ms(p.stale_for))
            .bind(p.now)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(db("put_entry"))?;
        entry(&row)
    }

    async fn invalidate_entries(&self, p: &InvalidateEntries) -> StoreResult<u64> {
        Ok(
            sqlx::query(include_str!("../queries/modules/invalidate.sql"))
                .bind(&p.module)
                .bind(p.key.as_deref())
                .bind(p.now)
                .execute(&self.inner.pool)
                .await
                .map_err(db("invalidate_entries"))?
                .rows_affected(),
        )
    }

    async fn list_entries(&self, p: &ListEntries) -> StoreResult<Vec<ModuleEntry>> {
        let (after_module, after_key) = match &p.after {
            Some((m, k)) => (Some(m.as_str()), Some(k.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(include_str!("../queries/modules/list.sql"))
            .bind(p.module.as_deref())
            .bind(after_module)
            .bind(after_key)
            .bind(i64::from(p.limit))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(db("list_entries"))?;
        rows.iter().map(entry).collect()
    }
}
