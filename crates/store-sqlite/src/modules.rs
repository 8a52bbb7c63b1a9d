//! [`ModuleStore`] on SQLite: each write one statement on the one writer
//! (the lock an upsert whose conflict clause decides, the finish an UPDATE
//! fenced by version and owner; see the query files), reads on the readers.

use capstan_core::Timestamp;
use capstan_store::modules::{
    EntryStatus, FinishRefresh, InvalidateEntries, ListEntries, LockOutcome, LockRefresh,
    ModuleEntry, PutEntry, ReadEntry,
};
use capstan_store::{ModuleStore, StoreError, StoreResult};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::SqliteStore;
use crate::row::{db, from_micros, micros, ms, now_or_system};

fn corrupt(message: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "capstan_module_entries",
        message: message.to_string(),
    }
}

fn entry(row: &SqliteRow) -> StoreResult<ModuleEntry> {
    let get = |e: sqlx::Error| corrupt(e);
    let time = |column: &str| -> StoreResult<Option<Timestamp>> {
        Ok(row
            .try_get::<Option<i64>, _>(column)
            .map_err(get)?
            .map(from_micros))
    };
    let status: String = row.try_get("status").map_err(get)?;
    let value = row
        .try_get::<Option<String>, _>("value")
        .map_err(get)?
        .map(|t| serde_json::from_str(&t).map_err(|e| corrupt(format!("value: {e}"))))
        .transpose()?;
    Ok(ModuleEntry {
        module: row.try_get("module").map_err(get)?,
        key: row.try_get("key").map_err(get)?,
        status: status.parse::<EntryStatus>().map_err(corrupt)?,
        value,
        fetched_at: time("fetched_at")?,
        fresh_until: time("fresh_until")?,
        stale_until: time("stale_until")?,
        error: row.try_get("error").map_err(get)?,
        failures: u32::try_from(row.try_get::<i64, _>("failures").map_err(get)?).unwrap_or(0),
        retry_at: time("retry_at")?,
        refresh_ms: row
            .try_get::<Option<i64>, _>("refresh_ms")
            .map_err(get)?
            .and_then(|m| u64::try_from(m).ok()),
        version: row.try_get("version").map_err(get)?,
        lock_owner: row.try_get("lock_owner").map_err(get)?,
        lock_until: time("lock_until")?,
        updated_at: from_micros(row.try_get("updated_at").map_err(get)?),
    })
}

fn json(operation: &'static str, v: &serde_json::Value) -> StoreResult<String> {
    capstan_store::jobs::encode(operation, v)
}

impl ModuleStore for SqliteStore {
    async fn read_entry(&self, p: &ReadEntry) -> StoreResult<Option<ModuleEntry>> {
        let row = sqlx::query(include_str!("../queries/modules/read.sql"))
            .bind(&p.module)
            .bind(&p.key)
            .fetch_optional(&self.inner.reader)
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
            .bind(p.fresh_enough.map(micros))
            .bind(p.force)
            .bind(micros(now_or_system(p.now)))
            .fetch_optional(&self.inner.writer)
            .await
            .map_err(db("lock_refresh"))?;
        let locked = row.as_ref().map(entry).transpose()?;
        LockOutcome::of(
            locked,
            "capstan_module_entries",
            self.read_entry(&ReadEntry {
                module: p.module.clone(),
                key: p.key.clone(),
            }),
        )
        .await
    }

    async fn finish_refresh(&self, p: &FinishRefresh) -> StoreResult<Option<ModuleEntry>> {
        let c = p.outcome.columns();
        let value = c.value.map(|v| json("finish_refresh", v)).transpose()?;
        let row = sqlx::query(include_str!("../queries/modules/finish.sql"))
            .bind(&p.module)
            .bind(&p.key)
            .bind(p.version)
            .bind(&p.owner)
            .bind(c.status)
            .bind(value)
            .bind(c.fresh_ms)
            .bind(c.stale_ms)
            .bind(c.error)
            .bind(c.retry_ms)
            .bind(ms(p.took))
            .bind(micros(now_or_system(p.now)))
            .fetch_optional(&self.inner.writer)
            .await
            .map_err(db("finish_refresh"))?;
        row.as_ref().map(entry).transpose()
    }

    async fn put_entry(&self, p: &PutEntry) -> StoreResult<ModuleEntry> {
        let row = sqlx::query(include_str!("../queries/modules/put.sql"))
            .bind(&p.module)
            .bind(&p.key)
            .bind(json("put_entry", &p.value)?)
            .bind(ms(p.fresh_for))
            .bind(ms(p.stale_for))
            .bind(micros(now_or_system(p.now)))
            .fetch_one(&self.inner.writer)
            .await
            .map_err(db("put_entry"))?;
        entry(&row)
    }

    async fn invalidate_entries(&self, p: &InvalidateEntries) -> StoreResult<u64> {
        Ok(
            sqlx::query(include_str!("../queries/modules/invalidate.sql"))
                .bind(&p.module)
                .bind(p.key.as_deref())
                .bind(micros(now_or_system(p.now)))
                .execute(&self.inner.writer)
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
            .fetch_all(&self.inner.reader)
            .await
            .map_err(db("list_entries"))?;
        rows.iter().map(entry).collect()
    }
}
