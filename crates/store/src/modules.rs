//! Modules: the freshness cache's entries in the database (its L2), one row
//! per (module, key), with the value, its freshness, the outcome of the last
//! refresh, and the refresh lock.
//!
//! The invariants every backend keeps:
//! - at most one refresh holds an entry's lock at a time: the lock is taken
//!   by one statement (an upsert whose condition decides), so of racing
//!   takers exactly one wins, on any number of nodes;
//! - every lock, put and invalidation bumps the entry's `version`; a
//!   refresher's result is written only under the version (and the owner)
//!   it locked with, so a refresher that outlived its lease, or whose entry
//!   was put or invalidated meanwhile, changes nothing;
//! - writing a refresh's outcome releases the lock in the same statement:
//!   an entry is never left locked by a refresh that ended, and a refresh
//!   that never ends loses the lock when its lease does;
//! - a failed refresh keeps the last good value and its freshness times
//!   (stale-if-error); only a successful one, a put or an invalidation
//!   replaces them.
//!
//! Keys are stored as given: a case-insensitive module normalizes them
//! before they reach the store.

use std::future::Future;
use std::time::Duration;

use capstan_core::Timestamp;
use serde_json::Value;

use crate::StoreResult;

/// What the last refresh (or write) left in an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    /// No value yet (never refreshed, or invalidated).
    Empty,
    /// A value, from a refresh or a put.
    Ready,
    /// The source said there is nothing for this key (negative cache).
    Missing,
    /// The last refresh failed; the last good value, if any, is kept.
    Error,
}

impl EntryStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Empty => "empty",
            EntryStatus::Ready => "ready",
            EntryStatus::Missing => "missing",
            EntryStatus::Error => "error",
        }
    }
}

impl std::str::FromStr for EntryStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "empty" => EntryStatus::Empty,
            "ready" => EntryStatus::Ready,
            "missing" => EntryStatus::Missing,
            "error" => EntryStatus::Error,
            other => return Err(format!("unknown entry status {other:?}")),
        })
    }
}

impl std::fmt::Display for EntryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a module.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleEntry {
    /// The module.
    pub module: String,
    /// The key (normalized by the module).
    pub key: String,
    /// What the last refresh or write left.
    pub status: EntryStatus,
    /// The last good value (`None` when empty or missing).
    pub value: Option<Value>,
    /// When that value (or the missing verdict) was fetched.
    pub fetched_at: Option<Timestamp>,
    /// Fresh until then.
    pub fresh_until: Option<Timestamp>,
    /// May be served stale until then.
    pub stale_until: Option<Timestamp>,
    /// The last refresh's error, while the status is `Error`.
    pub error: Option<String>,
    /// Refreshes that failed in a row.
    pub failures: u32,
    /// After a failure: no refresh before then (unless forced).
    pub retry_at: Option<Timestamp>,
    /// How long the last refresh took.
    pub refresh_ms: Option<u64>,
    /// Bumped by every lock, put and invalidation (the fencing version).
    pub version: i64,
    /// Who holds the refresh lock, while someone does.
    pub lock_owner: Option<String>,
    /// Until when.
    pub lock_until: Option<Timestamp>,
    /// The last write.
    pub updated_at: Timestamp,
}

impl LockOutcome {
    /// The outcome of a lock statement: the row it returned (taken), or
    /// else the entry as `read` finds it (held, fresh or backing off; it
    /// exists, since the upsert's conflict was on it).
    ///
    /// # Errors
    /// The read's error, or [`crate::StoreError::Corrupt`] when the entry
    /// is gone.
    pub async fn of(
        locked: Option<ModuleEntry>,
        table: &'static str,
        read: impl Future<Output = StoreResult<Option<ModuleEntry>>>,
    ) -> StoreResult<LockOutcome> {
        if let Some(entry) = locked {
            return Ok(LockOutcome {
                acquired: Some(entry.version),
                entry,
            });
        }
        let entry = read.await?.ok_or_else(|| crate::StoreError::Corrupt {
            table,
            message: "an entry not locked, yet not there".into(),
        })?;
        Ok(LockOutcome {
            acquired: None,
            entry,
        })
    }
}

impl ModuleEntry {
    /// Fresh at `now`: a value (or a missing verdict) whose freshness has
    /// not ended.
    pub fn is_fresh(&self, now: Timestamp) -> bool {
        matches!(
            self.status,
            EntryStatus::Ready | EntryStatus::Missing | EntryStatus::Error
        ) && self.fresh_until.is_some_and(|t| t > now)
    }

    /// Locked by a refresh at `now`.
    pub fn is_locked(&self, now: Timestamp) -> bool {
        self.lock_until.is_some_and(|t| t > now)
    }
}

/// Read one entry.
#[derive(Debug, Clone)]
pub struct ReadEntry {
    /// The module.
    pub module: String,
    /// The key.
    pub key: String,
}

/// Take an entry's refresh lock (creating the entry if it has none).
#[derive(Debug, Clone)]
pub struct LockRefresh {
    /// The module.
    pub module: String,
    /// The key.
    pub key: String,
    /// Who takes it: unique per attempt (a random token), so that no two
    /// refreshes ever share one.
    pub owner: String,
    /// How long the lock holds unless the refresh ends first.
    pub lease: Duration,
    /// Do not take it while the entry stays fresh past this time
    /// (skip-if-fresh: `now`; a refresh ahead of expiry: `now` plus how far
    /// ahead); `None` takes it however fresh the entry is.
    pub fresh_enough: Option<Timestamp>,
    /// Take it even before the entry's `retry_at` (an explicit refresh).
    pub force: bool,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// What taking a lock came to.
#[derive(Debug, Clone, PartialEq)]
pub struct LockOutcome {
    /// The version the refresh must write under, when the lock was taken.
    pub acquired: Option<i64>,
    /// The entry as it is now (after the lock, when taken): why not, else.
    pub entry: ModuleEntry,
}

/// How a refresh ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// A value, fresh for `fresh_for`, then servable stale for `stale_for`.
    Ready {
        /// The value.
        value: Value,
        /// Fresh this long from now.
        fresh_for: Duration,
        /// Then stale, and still servable, this long.
        stale_for: Duration,
    },
    /// The source has nothing for this key: remembered for `fresh_for`.
    Missing {
        /// How long the verdict holds.
        fresh_for: Duration,
    },
    /// The refresh failed: the last good value stays; no new refresh
    /// before `retry_after` from now (unless forced).
    Failed {
        /// What went wrong.
        message: String,
        /// The backoff before the next try.
        retry_after: Duration,
    },
}

/// A [`RefreshOutcome`] as the columns both backends' finish statement
/// takes.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeColumns<'a> {
    /// `ready`, `missing` or `error`.
    pub status: &'static str,
    /// The value (ready only).
    pub value: Option<&'a Value>,
    /// Fresh for, in milliseconds.
    pub fresh_ms: i64,
    /// Then stale for, in milliseconds.
    pub stale_ms: i64,
    /// The error (error only).
    pub error: Option<&'a str>,
    /// The backoff, in milliseconds (error only).
    pub retry_ms: i64,
}

impl RefreshOutcome {
    /// Its columns.
    pub fn columns(&self) -> OutcomeColumns<'_> {
        let ms = |d: &Duration| d.as_millis().min(i64::MAX as u128) as i64;
        let none = OutcomeColumns {
            status: "",
            value: None,
            fresh_ms: 0,
            stale_ms: 0,
            error: None,
            retry_ms: 0,
        };
        match self {
            RefreshOutcome::Ready {
                value,
                fresh_for,
                stale_for,
            } => OutcomeColumns {
                status: "ready",
                value: Some(value),
                fresh_ms: ms(fresh_for),
                stale_ms: ms(stale_for),
                ..none
            },
            RefreshOutcome::Missing { fresh_for } => OutcomeColumns {
                status: "missing",
                fresh_ms: ms(fresh_for),
                ..none
            },
            RefreshOutcome::Failed {
                message,
                retry_after,
            } => OutcomeColumns {
                status: "error",
                error: Some(message),
                retry_ms: ms(retry_after),
                ..none
            },
        }
    }
}

/// Write a refresh's outcome and release its lock, if it still holds it.
#[derive(Debug, Clone)]
pub struct FinishRefresh {
    /// The module.
    pub module: String,
    /// The key.
    pub key: String,
    /// The version the lock returned.
    pub version: i64,
    /// The lock's owner.
    pub owner: String,
    /// How it ended.
    pub outcome: RefreshOutcome,
    /// How long it took.
    pub took: Duration,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// Write a value directly (write-through): it is fresh at once, and an
/// in-flight refresh is fenced.
#[derive(Debug, Clone)]
pub struct PutEntry {
    /// The module.
    pub module: String,
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Fresh this long from now.
    pub fresh_for: Duration,
    /// Then servable stale this long.
    pub stale_for: Duration,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// Forget entries' values: the next read refreshes. An in-flight refresh
/// is fenced, and a failure's backoff forgotten.
#[derive(Debug, Clone)]
pub struct InvalidateEntries {
    /// The module.
    pub module: String,
    /// One key, or `None` for every key of the module.
    pub key: Option<String>,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// List entries in (module, key) order.
#[derive(Debug, Clone, Default)]
pub struct ListEntries {
    /// Only this module.
    pub module: Option<String>,
    /// Only entries after this (module, key): the next page.
    pub after: Option<(String, String)>,
    /// At most this many.
    pub limit: u32,
}

/// The freshness cache's entries.
pub trait ModuleStore: Send + Sync {
    /// The entry, if it exists.
    fn read_entry(
        &self,
        p: &ReadEntry,
    ) -> impl Future<Output = StoreResult<Option<ModuleEntry>>> + Send;

    /// Take the refresh lock: acquired when nobody holds it (or its lease
    /// ended), and — as asked — the entry is not fresh and not backing off.
    fn lock_refresh(
        &self,
        p: &LockRefresh,
    ) -> impl Future<Output = StoreResult<LockOutcome>> + Send;

    /// Write the outcome and release the lock, under the version and owner
    /// the lock returned: the entry after it, or `None` when fenced (the
    /// lock was taken over, or the entry put or invalidated meanwhile:
    /// nothing changed).
    fn finish_refresh(
        &self,
        p: &FinishRefresh,
    ) -> impl Future<Output = StoreResult<Option<ModuleEntry>>> + Send;

    /// Write a value: the entry after it.
    fn put_entry(&self, p: &PutEntry) -> impl Future<Output = StoreResult<ModuleEntry>> + Send;

    /// Invalidate: how many entries were.
    fn invalidate_entries(
        &self,
        p: &InvalidateEntries,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// List entries.
    fn list_entries(
        &self,
        p: &ListEntries,
    ) -> impl Future<Output = StoreResult<Vec<ModuleEntry>>> + Send;
}
