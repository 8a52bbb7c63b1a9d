//! [`Modules`]: the freshness cache of one process, over the store's
//! entries (L2) and a bounded memory of its own per module (L1).
//!
//! A read, in order:
//! 1. fresh in L1 → served;
//! 2. fresh in L2 → kept in L1, served;
//! 3. stale but within `stale_ttl` → served at once, and refreshed in the
//!    background (stale-while-revalidate); while refreshes fail, served
//!    with their error (stale-if-error) until the backoff allows another;
//! 4. nothing to serve → waits, up to `wait_timeout`, for the one refresh.
//!
//! A fresh read within `refresh_ahead` of expiry starts a background
//! refresh, so a busy key never goes stale.
//!
//! One refresh per key: in this process, reads of a key share one flight
//! (a task, so a caller that gives up does not stop it); across processes,
//! the flight takes the entry's lock in the database (one statement
//! decides), and a flight that finds it held waits for the `modules`
//! topic's word that the entry changed (or the lock's lease to end, or at
//! most a second, should a hint be lost) and looks again. The refresher
//! runs in a task of its own under `refresh_timeout`: whatever it does —
//! return, fail, panic, hang — its outcome is written with the lock's
//! version and owner, which releases the lock; a result that comes after
//! the entry moved on (the lease taken over, a put, an invalidation) is
//! refused and counted as fenced.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_core::{Clock, SystemClock, Timestamp};
use capstan_store::modules::{
    EntryStatus, FinishRefresh, InvalidateEntries, ListEntries, LockRefresh, ModuleEntry, PutEntry,
    ReadEntry, RefreshOutcome,
};
use capstan_store::{Received, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::change::{Change, MODULES};
use crate::stats::{Counters, ModuleStats};
use crate::{ModuleConfig, ModuleError, Refreshed, Refresher};

/// The longest a flight waiting on another node's refresh goes without
/// looking again, should the hint that it ended be lost.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// Where a read's value came from (named after RFC 9211's `Cache-Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Served {
    /// Fresh, from this node's memory.
    L1,
    /// Fresh, from the database.
    L2,
    /// This read waited for a refresh it started.
    Refreshed,
    /// This read waited for a refresh another read had started.
    Collapsed,
    /// Stale, while a refresh runs in the background.
    Stale,
    /// Stale, because refreshes fail (`error` says why).
    StaleIfError,
}

/// A read's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Got {
    /// The module.
    pub module: String,
    /// The key, as the module normalized it.
    pub key: String,
    /// The value; `None` when the source said it has nothing for the key.
    pub value: Option<Value>,
    /// Where it came from.
    pub served: Served,
    /// Whether it is within its `ttl`.
    pub fresh: bool,
    /// How old it is (since it was fetched).
    #[serde(with = "capstan_core::humantime_serde::option")]
    pub age: Option<Duration>,
    /// Fresh until then.
    pub fresh_until: Option<Timestamp>,
    /// Servable stale until then.
    pub stale_until: Option<Timestamp>,
    /// The last refresh's error, when it failed.
    pub error: Option<String>,
    /// The entry's version.
    pub version: i64,
}

impl Got {
    /// The value as a `T` (`None`: not found).
    ///
    /// # Errors
    /// [`ModuleError::Decode`] when it is not a `T`.
    pub fn value_as<T: DeserializeOwned>(&self) -> Result<Option<T>, ModuleError> {
        self.value
            .clone()
            .map(|v| {
                serde_json::from_value(v).map_err(|source| ModuleError::Decode {
                    module: self.module.clone(),
                    key: self.key.clone(),
                    source,
                })
            })
            .transpose()
    }

    fn of(module: &str, e: &ModuleEntry, served: Served, now: Timestamp) -> Got {
        Got {
            module: module.to_owned(),
            key: e.key.clone(),
            value: e.value.clone(),
            served,
            fresh: e.is_fresh(now),
            age: e.fetched_at.and_then(|t| (now - t).to_std().ok()),
            fresh_until: e.fresh_until,
            stale_until: e.stale_until,
            error: (e.status == EntryStatus::Error)
                .then(|| e.error.clone())
                .flatten(),
            version: e.version,
        }
    }
}

/// An entry in a node's memory, with the epoch it was read in (a node that
/// may have missed hints starts a new epoch, and reads its memory's
/// entries from the database again before serving them).
#[derive(Debug, Clone)]
struct Cached {
    entry: Arc<ModuleEntry>,
    epoch: u64,
}

struct Module {
    name: String,
    config: ModuleConfig,
    refresher: Arc<dyn Refresher>,
    l1: moka::sync::Cache<String, Cached>,
    /// Bumped by every invalidation heard of the whole module, and …
    generation: AtomicU64,
    /// … per key, by every invalidation heard of it (they carry no
    /// version): a read keeps what it read only if none came since it
    /// looked;
    key_generations: moka::sync::Cache<String, u64>,
    /// and per key the newest version a put or a refresh announced, below
    /// which nothing is kept. Together: an old value read just before a
    /// put or an invalidation committed cannot outlive it in memory.
    floors: moka::sync::Cache<String, i64>,
    counters: Counters,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a read had seen when it looked: the epoch and the generations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    epoch: u64,
    module: u64,
    key: u64,
}

impl Module {
    fn stamp(&self, epoch: &AtomicU64, key: &str) -> Stamp {
        Stamp {
            epoch: epoch.load(Ordering::Acquire),
            module: self.generation.load(Ordering::Acquire),
            key: self.key_generations.get(key).unwrap_or(0),
        }
    }

    /// A version of `key` was announced (put or refreshed).
    fn raise_floor(&self, key: &str, version: i64) {
        if self.floors.get(key).is_none_or(|f| f < version) {
            self.floors.insert(key.to_owned(), version);
        }
    }

    /// An invalidation of `key` (`None`: of every key) was heard or made.
    fn changed(&self, key: Option<&str>) {
        match key {
            Some(k) => {
                let next = self.key_generations.get(k).unwrap_or(0) + 1;
                self.key_generations.insert(k.to_owned(), next);
            }
            None => {
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn normalize(&self, key: &str) -> Result<String, ModuleError> {
        let key = if self.config.case_insensitive {
            key.to_lowercase()
        } else {
            key.to_owned()
        };
        if key.is_empty() || key.len() > crate::MAX_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(ModuleError::InvalidKey {
                module: self.name.clone(),
                message: format!(
                    "a key is 1 to {} bytes without control characters",
                    crate::MAX_KEY_BYTES
                ),
            });
        }
        Ok(key)
    }
}

/// What a flight came to, for the reads that wait on it.
#[derive(Debug, Clone)]
enum Landed {
    /// The entry as the flight left it (refreshed, or found fresh, or
    /// backing off after failures).
    Entry(Arc<ModuleEntry>),
    /// Another node's refresh did not end within the wait.
    TimedOut,
    /// The database did not answer.
    Unavailable(String),
}

/// Why a flight flies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A read waits for it: refresh unless the entry is fresh.
    Wait,
    /// A stale read was served: refresh in the background.
    Background,
    /// A fresh read near expiry: refresh if freshness ends within the
    /// module's `refresh_ahead`.
    Ahead,
    /// Asked explicitly: refresh whatever the entry's state.
    Force,
}

type FlightKey = (String, String);

#[derive(Debug)]
struct Inner<S> {
    store: S,
    clock: Arc<dyn Clock>,
    modules: BTreeMap<String, Arc<Module>>,
    flights: Mutex<HashMap<FlightKey, watch::Receiver<Option<Landed>>>>,
    /// Entry changes heard (`None`: some may have been missed).
    changes: broadcast::Sender<Option<Change>>,
    epoch: AtomicU64,
    /// Names this process in lock owners.
    node: String,
}

/// The freshness cache of one process. Cheap to clone.
#[derive(Debug)]
pub struct Modules<S: Store> {
    inner: Arc<Inner<S>>,
}

impl<S: Store> Clone for Modules<S> {
    fn clone(&self) -> Self {
        Modules {
            inner: self.inner.clone(),
        }
    }
}

/// Builds [`Modules`]: the store, the clock, and each module with its
/// settings and refresher.
#[derive(Debug)]
pub struct ModulesBuilder<S: Store> {
    store: S,
    clock: Arc<dyn Clock>,
    node: String,
    modules: Vec<(String, ModuleConfig, Arc<dyn Refresher>)>,
}

impl<S: Store> ModulesBuilder<S> {
    /// Use `clock` for every freshness decision (tests pin it).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Name this process in lock owners (default: a random name).
    #[must_use]
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = node.into();
        self
    }

    /// Add a module.
    #[must_use]
    pub fn module(
        mut self,
        name: impl Into<String>,
        config: ModuleConfig,
        refresher: Arc<dyn Refresher>,
    ) -> Self {
        self.modules.push((name.into(), config, refresher));
        self
    }

    /// Check the modules, listen for entry changes (before returning, so
    /// none sent after is missed) until `stop`, and serve.
    ///
    /// # Errors
    /// [`ModuleError::Config`] for a bad setting or a module named twice;
    /// the store's error when it cannot listen.
    pub async fn start(self, stop: CancellationToken) -> Result<Modules<S>, ModuleError> {
        let mut modules = BTreeMap::new();
        for (name, config, refresher) in self.modules {
            config
                .validate(&name)
                .map_err(|message| ModuleError::Config { message })?;
            let l1 = moka::sync::Cache::new(config.l1_max_entries);
            let key_generations = moka::sync::Cache::new(config.l1_max_entries);
            let floors = moka::sync::Cache::new(config.l1_max_entries);
            let module = Module {
                name: name.clone(),
                config,
                refresher,
                l1,
                generation: AtomicU64::new(0),
                key_generations,
                floors,
                counters: Counters::default(),
            };
            if modules.insert(name.clone(), Arc::new(module)).is_some() {
                return Err(ModuleError::Config {
                    message: format!("module {name:?} is configured twice"),
                });
            }
        }
        let inner = Arc::new(Inner {
            store: self.store,
            clock: self.clock,
            modules,
            flights: Mutex::default(),
            changes: broadcast::channel(1024).0,
            epoch: AtomicU64::new(0),
            node: self.node,
        });
        let notifications = inner.store.subscribe(&[MODULES]).await?;
        tokio::spawn(listen(inner.clone(), notifications, stop));
        Ok(Modules { inner })
    }
}

/// Apply the entry changes other nodes (and this one) announce.
async fn listen<S: Store>(
    inner: Arc<Inner<S>>,
    mut notifications: capstan_store::Notifications,
    stop: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            r = notifications.recv() => r,
            () = stop.cancelled() => return,
        };
        match received {
            Some(Received::Notification(n)) if n.topic == MODULES => {
                let Some(change) = Change::parse(&n.payload) else {
                    tracing::debug!(payload = %n.payload, "an unreadable modules hint; ignored");
                    continue;
                };
                if let Some(m) = inner.modules.get(&change.module) {
                    match (&change.key, change.version) {
                        (Some(key), Some(v)) => m.raise_floor(key, v),
                        (key, _) => m.changed(key.as_deref()),
                    }
                    match &change.key {
                        Some(key) => {
                            let outdated = m.l1.get(key).is_some_and(|c| {
                                change.version.is_none_or(|v| c.entry.version < v)
                            });
                            if outdated {
                                m.l1.invalidate(key);
                            }
                        }
                        None => m.l1.invalidate_all(),
                    }
                }
                let _ = inner.changes.send(Some(change));
            }
            Some(_) => {
                // Hints may be lost: what memory holds is read again before
                // it is served, and waiting flights look again.
                inner.epoch.fetch_add(1, Ordering::AcqRel);
                let _ = inner.changes.send(None);
            }
            None => return,
        }
    }
}

impl<S: Store> Modules<S> {
    /// Start building, on `store`.
    pub fn builder(store: S) -> ModulesBuilder<S> {
        ModulesBuilder {
            store,
            clock: Arc::new(SystemClock),
            node: format!("modules-{:08x}", rand::random::<u32>()),
            modules: Vec::new(),
        }
    }

    fn module(&self, name: &str) -> Result<Arc<Module>, ModuleError> {
        self.inner
            .modules
            .get(name)
            .cloned()
            .ok_or_else(|| ModuleError::UnknownModule {
                name: name.to_owned(),
                known: self.names().join(", "),
            })
    }

    /// The configured modules' names.
    pub fn names(&self) -> Vec<String> {
        self.inner.modules.keys().cloned().collect()
    }

    /// A module's settings.
    pub fn config(&self, module: &str) -> Option<&ModuleConfig> {
        self.inner.modules.get(module).map(|m| &m.config)
    }

    /// Read `key` of `module` (see the module docs for the order).
    ///
    /// # Errors
    /// [`ModuleError::UnknownModule`], [`ModuleError::InvalidKey`];
    /// [`ModuleError::Refresh`] when refreshes fail and nothing is left to
    /// serve; [`ModuleError::Timeout`] after `wait_timeout`; the store's
    /// error.
    pub async fn get(&self, module: &str, key: &str) -> Result<Got, ModuleError> {
        let m = self.module(module)?;
        let key = m.normalize(key)?;
        let now = self.inner.clock.now();
        let stamp = m.stamp(&self.inner.epoch, &key);
        if let Some(c) = m.l1.get(&key)
            && c.epoch == stamp.epoch
            && c.entry.is_fresh(now)
        {
            self.count_fresh(&m, &c.entry, &m.counters.l1_hits);
            self.ahead(&m, &key, &c.entry, now);
            return Ok(Got::of(&m.name, &c.entry, Served::L1, now));
        }
        let read = self
            .inner
            .store
            .read_entry(&ReadEntry {
                module: m.name.clone(),
                key: key.clone(),
            })
            .await?;
        // The version seen: a flight that landed with an older one (it
        // wrote before a put or an invalidation this read saw) is not taken.
        let seen = read.as_ref().map_or(0, |e| e.version);
        if let Some(e) = read {
            let e = Arc::new(e);
            remember(&m, &e, stamp);
            if e.is_fresh(now) {
                self.count_fresh(&m, &e, &m.counters.l2_hits);
                self.ahead(&m, &key, &e, now);
                return Ok(Got::of(&m.name, &e, Served::L2, now));
            }
            if let Some(got) = self.stale(&m, &key, &e, now) {
                return Ok(got);
            }
        }
        Counters::bump(&m.counters.misses);
        let deadline = Instant::now() + m.config.wait_timeout;
        let mut round = 0;
        loop {
            round += 1;
            let (mut rx, joined) = self.flight(&m, &key, Mode::Wait);
            if joined {
                Counters::bump(&m.counters.coalesced);
            }
            let waited = tokio::time::timeout_at(deadline, async {
                loop {
                    if let Some(landed) = rx.borrow_and_update().clone() {
                        return Some(landed);
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            })
            .await;
            let landed = match waited {
                Ok(Some(landed)) => landed,
                Ok(None) => Landed::Unavailable("the refresh ended without an outcome".into()),
                Err(_) => Landed::TimedOut,
            };
            let now = self.inner.clock.now();
            return match landed {
                Landed::Entry(e) if e.version < seen && round < 3 && Instant::now() < deadline => {
                    continue;
                }
                Landed::Entry(e) if e.is_fresh(now) => {
                    if e.status == EntryStatus::Missing {
                        Counters::bump(&m.counters.negative_hits);
                    }
                    let served = if joined {
                        Served::Collapsed
                    } else {
                        Served::Refreshed
                    };
                    Ok(Got::of(&m.name, &e, served, now))
                }
                Landed::Entry(e) => {
                    if let Some(got) = self.stale(&m, &key, &e, now) {
                        return Ok(got);
                    }
                    let failed =
                        e.status == EntryStatus::Error || e.retry_at.is_some_and(|t| t > now);
                    // A flight that began before this read's time and
                    // landed with what was fresh then: fly again.
                    if !failed && round < 3 && Instant::now() < deadline {
                        continue;
                    }
                    Err(ModuleError::Refresh {
                        module: m.name.clone(),
                        key,
                        message: e
                            .error
                            .clone()
                            .unwrap_or_else(|| "the refresh left no value".into()),
                        retry_at: e.retry_at,
                    })
                }
                Landed::TimedOut => {
                    Counters::bump(&m.counters.timeouts);
                    Err(ModuleError::Timeout {
                        module: m.name.clone(),
                        key,
                        waited: m.config.wait_timeout,
                    })
                }
                Landed::Unavailable(message) => Err(ModuleError::Unavailable {
                    module: m.name.clone(),
                    key,
                    message,
                }),
            };
        }
    }

    /// Read `key` and decode its value as a `T` (`None`: not found).
    ///
    /// # Errors
    /// As [`Modules::get`], and [`ModuleError::Decode`].
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        module: &str,
        key: &str,
    ) -> Result<(Option<T>, Got), ModuleError> {
        let got = self.get(module, key).await?;
        Ok((got.value_as()?, got))
    }

    /// Refresh `key` now, whatever its freshness or backoff, and wait for
    /// the outcome (one refresh across nodes still: a refresh already
    /// running is waited for instead).
    ///
    /// # Errors
    /// As [`Modules::get`].
    pub async fn refresh(&self, module: &str, key: &str) -> Result<ModuleEntry, ModuleError> {
        let m = self.module(module)?;
        let key = m.normalize(key)?;
        let (mut rx, _) = self.flight(&m, &key, Mode::Force);
        let landed = tokio::time::timeout(m.config.wait_timeout, rx.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|l| l.clone()));
        match landed {
            Some(Landed::Entry(e)) => Ok((*e).clone()),
            Some(Landed::Unavailable(message)) => Err(ModuleError::Unavailable {
                module: m.name.clone(),
                key,
                message,
            }),
            Some(Landed::TimedOut) | None => Err(ModuleError::Timeout {
                module: m.name.clone(),
                key,
                waited: m.config.wait_timeout,
            }),
        }
    }

    /// Write `value` for `key` (write-through): fresh at once on every
    /// node; a refresh in flight is fenced.
    ///
    /// # Errors
    /// Unknown module, invalid key, or the store's error.
    pub async fn put(
        &self,
        module: &str,
        key: &str,
        value: Value,
    ) -> Result<ModuleEntry, ModuleError> {
        let m = self.module(module)?;
        let key = m.normalize(key)?;
        let e = self
            .inner
            .store
            .put_entry(&PutEntry {
                module: m.name.clone(),
                key: key.clone(),
                value,
                fresh_for: m.config.ttl,
                stale_for: m.config.stale_ttl,
                now: self.inner.clock.pinned(),
            })
            .await?;
        // Reads that looked before the put keep nothing older.
        m.raise_floor(&key, e.version);
        let e = Arc::new(e);
        remember(&m, &e, m.stamp(&self.inner.epoch, &key));
        announce(&self.inner, &m.name, Some(&key), Some(e.version)).await;
        Ok((*e).clone())
    }

    /// Forget `key`'s value (`None`: every key of the module) on every
    /// node: the next read refreshes. Returns how many entries were.
    ///
    /// # Errors
    /// Unknown module, invalid key, or the store's error.
    pub async fn invalidate(&self, module: &str, key: Option<&str>) -> Result<u64, ModuleError> {
        let m = self.module(module)?;
        let key = key.map(|k| m.normalize(k)).transpose()?;
        let n = self
            .inner
            .store
            .invalidate_entries(&InvalidateEntries {
                module: m.name.clone(),
                key: key.clone(),
                now: self.inner.clock.pinned(),
            })
            .await?;
        // Reads that looked before the invalidation keep nothing of what
        // they read.
        m.changed(key.as_deref());
        match &key {
            Some(k) => m.l1.invalidate(k),
            None => m.l1.invalidate_all(),
        }
        announce(&self.inner, &m.name, key.as_deref(), None).await;
        Ok(n)
    }

    /// The module's entries in the database, by key, after `after`.
    ///
    /// # Errors
    /// Unknown module, or the store's error.
    pub async fn entries(
        &self,
        module: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ModuleEntry>, ModuleError> {
        let m = self.module(module)?;
        Ok(self
            .inner
            .store
            .list_entries(&ListEntries {
                module: Some(m.name.clone()),
                after: after.map(|k| (m.name.clone(), k.to_owned())),
                limit,
            })
            .await?)
    }

    /// This node's counters of `module`.
    ///
    /// # Errors
    /// Unknown module.
    pub fn stats(&self, module: &str) -> Result<ModuleStats, ModuleError> {
        let m = self.module(module)?;
        m.l1.run_pending_tasks();
        let in_flight = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((module, _), rx)| *module == m.name && rx.borrow().is_none())
            .count() as u64;
        Ok(m.counters.snapshot(&m.name, m.l1.entry_count(), in_flight))
    }

    fn count_fresh(&self, m: &Module, e: &ModuleEntry, counter: &AtomicU64) {
        if e.status == EntryStatus::Missing {
            Counters::bump(&m.counters.negative_hits);
        } else {
            Counters::bump(counter);
        }
    }

    /// A stale entry's answer, if it may still be served; starts the
    /// background refresh it calls for.
    fn stale(&self, m: &Arc<Module>, key: &str, e: &ModuleEntry, now: Timestamp) -> Option<Got> {
        if e.value.is_none() || e.stale_until.is_none_or(|t| t <= now) {
            return None;
        }
        let backing_off = e.retry_at.is_some_and(|t| t > now);
        if !backing_off && !e.is_locked(now) {
            self.flight(m, key, Mode::Background);
        }
        if e.status == EntryStatus::Error {
            Counters::bump(&m.counters.stale_if_error);
            Some(Got::of(&m.name, e, Served::StaleIfError, now))
        } else {
            Counters::bump(&m.counters.stale_served);
            Some(Got::of(&m.name, e, Served::Stale, now))
        }
    }

    /// A fresh read near expiry refreshes ahead, in the background.
    fn ahead(&self, m: &Arc<Module>, key: &str, e: &ModuleEntry, now: Timestamp) {
        let Some(ahead) = m.config.refresh_ahead else {
            return;
        };
        // A "not found" is kept for its own negative_ttl, not refreshed
        // ahead (which could call the source at every read of it).
        if e.status == EntryStatus::Missing {
            return;
        }
        let horizon = now + chrono::Duration::from_std(ahead).unwrap_or(chrono::Duration::MAX);
        if e.fresh_until.is_some_and(|t| t <= horizon)
            && !e.is_locked(now)
            && e.retry_at.is_none_or(|t| t <= now)
        {
            self.flight(m, key, Mode::Ahead);
        }
    }

    /// Join this process's flight for `key`, or start one: the receiver of
    /// its outcome, and whether it was joined.
    fn flight(
        &self,
        m: &Arc<Module>,
        key: &str,
        mode: Mode,
    ) -> (watch::Receiver<Option<Landed>>, bool) {
        let id = (m.name.clone(), key.to_owned());
        let mut flights = self.inner.flights.lock().unwrap_or_else(|e| e.into_inner());
        // (A flight that has landed but not yet left the map is over: a
        // new request needs a new flight.)
        if let Some(rx) = flights.get(&id)
            && rx.borrow().is_none()
        {
            return (rx.clone(), true);
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(id.clone(), rx.clone());
        drop(flights);
        let inner = self.inner.clone();
        let m = m.clone();
        tokio::spawn(async move {
            // Whatever ends the flight — its outcome, a panic, the runtime
            // shutting down — the guard lands it and takes it off the map,
            // so no read ever joins a flight that will not land.
            let guard = Landing {
                flights: &inner.flights,
                id: &id,
                tx,
            };
            let landed = fly(&inner, &m, &id.1, mode).await;
            guard.land(landed);
        });
        (rx, false)
    }
}

/// Lands a flight: its outcome to the reads that wait on it, and off the
/// map (only itself: a newer flight of the key stays).
struct Landing<'a> {
    flights: &'a Mutex<HashMap<FlightKey, watch::Receiver<Option<Landed>>>>,
    id: &'a FlightKey,
    tx: watch::Sender<Option<Landed>>,
}

impl Landing<'_> {
    fn land(self, landed: Landed) {
        self.tx.send_replace(Some(landed));
        // (Drop takes it off the map.)
    }
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        if self.tx.borrow().is_none() {
            self.tx.send_replace(Some(Landed::Unavailable(
                "the refresh ended abnormally (a panic in Capstan, or shutdown)".into(),
            )));
        }
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights
            .get(self.id)
            .is_some_and(|r| r.same_channel(&self.tx.subscribe()))
        {
            flights.remove(self.id);
        }
    }
}

/// Keep `e` in memory, unless something changed since `stamp` was taken
/// (the read may predate a put or an invalidation) or memory holds a newer
/// version.
fn remember(m: &Module, e: &Arc<ModuleEntry>, stamp: Stamp) {
    let now = Stamp {
        epoch: stamp.epoch,
        module: m.generation.load(Ordering::Acquire),
        key: m.key_generations.get(&e.key).unwrap_or(0),
    };
    if now != stamp || m.floors.get(&e.key).is_some_and(|f| e.version < f) {
        return;
    }
    let newer =
        m.l1.get(&e.key)
            .is_some_and(|c| c.entry.version > e.version && c.epoch == stamp.epoch);
    if !newer {
        m.l1.insert(
            e.key.clone(),
            Cached {
                entry: e.clone(),
                epoch: stamp.epoch,
            },
        );
    }
}

/// Tell every node (this one too) that an entry changed.
async fn announce<S: Store>(
    inner: &Inner<S>,
    module: &str,
    key: Option<&str>,
    version: Option<i64>,
) {
    let change = Change {
        module: module.to_owned(),
        key: key.map(str::to_owned),
        version,
    };
    if let Some(n) = change.notification()
        && let Err(e) = inner.store.notify(n).await
    {
        tracing::warn!(error = %e, module, "could not announce a module change: other nodes may serve what their memory holds until it expires");
    }
}

/// One flight: take the lock and refresh, or wait for whoever holds it.
async fn fly<S: Store>(
    inner: &Arc<Inner<S>>,
    m: &Arc<Module>,
    key: &str,
    mut mode: Mode,
) -> Landed {
    let deadline = Instant::now() + m.config.wait_timeout;
    // Listening before the first look: a change between the look and the
    // wait is not missed.
    let mut changes = inner.changes.subscribe();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let now = inner.clock.now();
        let fresh_enough = match mode {
            Mode::Wait | Mode::Background => Some(now),
            Mode::Ahead => m
                .config
                .refresh_ahead
                .map(|a| now + chrono::Duration::from_std(a).unwrap_or(chrono::Duration::MAX)),
            Mode::Force => None,
        };
        let owner = format!("{}:{:016x}", inner.node, rand::random::<u64>());
        let stamp = m.stamp(&inner.epoch, key);
        let lock = inner
            .store
            .lock_refresh(&LockRefresh {
                module: m.name.clone(),
                key: key.to_owned(),
                owner: owner.clone(),
                lease: m.config.lease(),
                fresh_enough,
                force: mode == Mode::Force,
                now: inner.clock.pinned(),
            })
            .await;
        let lock = match lock {
            Ok(l) => l,
            Err(e) => return Landed::Unavailable(e.to_string()),
        };
        let entry = Arc::new(lock.entry);
        if let Some(version) = lock.acquired {
            match refresh(inner, m, key, version, owner, &entry).await {
                Ok(Some(done)) => return Landed::Entry(done),
                // Fenced: the entry moved on meanwhile; look again (a put
                // or another refresh may have left it fresh).
                Ok(None) if rounds < 3 => continue,
                Ok(None) => return Landed::TimedOut,
                Err(e) => return Landed::Unavailable(e),
            }
        }
        remember(m, &entry, stamp);
        let now = inner.clock.now();
        if mode != Mode::Force && entry.is_fresh(now) {
            return Landed::Entry(entry);
        }
        if !entry.is_locked(now) {
            // Backing off after failures: the entry says until when.
            return Landed::Entry(entry);
        }
        // Another node refreshes: wait for its word, its lease's end, or
        // a second at most (should the word be lost).
        let lease_left = entry
            .lock_until
            .and_then(|t| (t - now).to_std().ok())
            .unwrap_or_default();
        let nap = lease_left
            .min(LOOK_AGAIN)
            .max(Duration::from_millis(5))
            .min(deadline.saturating_duration_since(Instant::now()));
        if nap.is_zero() {
            return Landed::TimedOut;
        }
        tokio::select! {
            () = heard(&mut changes, &m.name, key) => {}
            () = tokio::time::sleep(nap) => {}
        }
        if Instant::now() >= deadline {
            return Landed::TimedOut;
        }
        // The refresh that was running answers an explicit one too.
        if mode == Mode::Force {
            mode = Mode::Wait;
        }
    }
}

/// Until a change of `module`/`key` is heard (or some may have been missed).
async fn heard(changes: &mut broadcast::Receiver<Option<Change>>, module: &str, key: &str) {
    loop {
        match changes.recv().await {
            Ok(Some(c)) if c.touches(module, key) => return,
            Ok(Some(_)) => {}
            Ok(None) | Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// Run the refresher under the lock and write its outcome: the entry after
/// it, `None` when fenced, or the store's error.
async fn refresh<S: Store>(
    inner: &Arc<Inner<S>>,
    m: &Arc<Module>,
    key: &str,
    version: i64,
    owner: String,
    before: &ModuleEntry,
) -> Result<Option<Arc<ModuleEntry>>, String> {
    Counters::bump(&m.counters.refreshes);
    let started = Instant::now();
    // In a task of its own: a panic is caught as a failure, and a refresher
    // that hangs is dropped at the timeout.
    // (The future is made inside the task too: a refresher that panics
    // before it returns one is caught the same way.)
    let refresher = m.refresher.clone();
    let owned = key.to_owned();
    let task = tokio::spawn(async move { refresher.refresh(owned).await });
    let abort = task.abort_handle();
    let failed = |message: String| {
        Counters::bump(&m.counters.failures);
        tracing::warn!(module = %m.name, key, error = %message, "refresh failed");
        RefreshOutcome::Failed {
            message,
            retry_after: jittered(m.config.backoff(before.failures + 1), m.config.jitter),
        }
    };
    let outcome = match tokio::time::timeout(m.config.refresh_timeout, task).await {
        Ok(Ok(Ok(Refreshed::Value(value)))) => RefreshOutcome::Ready {
            value,
            fresh_for: m.config.ttl,
            stale_for: m.config.stale_ttl,
        },
        Ok(Ok(Ok(Refreshed::NotFound))) => RefreshOutcome::Missing {
            fresh_for: m.config.negative_ttl,
        },
        Ok(Ok(Err(e))) => failed(e.to_string()),
        Ok(Err(join)) if join.is_panic() => {
            let panic = join.into_panic();
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text payload".into());
            failed(format!("the refresher panicked: {what}"))
        }
        Ok(Err(_)) => failed("the refresher was cancelled".into()),
        Err(_) => {
            abort.abort();
            failed(format!(
                "the refresher did not answer within {:?} (modules.{}.refresh_timeout)",
                m.config.refresh_timeout, m.name
            ))
        }
    };
    let mut finish = FinishRefresh {
        module: m.name.clone(),
        key: key.to_owned(),
        version,
        owner,
        outcome,
        took: started.elapsed(),
        now: inner.clock.pinned(),
    };
    // The database may be briefly away: the outcome is written again until
    // the lock's lease would have ended (after that it is not ours anyway).
    let until = started + m.config.lease();
    let stamp = m.stamp(&inner.epoch, key);
    let mut pause = Duration::from_millis(50);
    let written = loop {
        match inner.store.finish_refresh(&finish).await {
            Ok(w) => break w,
            Err(e) if e.is_transient() && Instant::now() + pause < until => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            // The database refuses the value itself (text it cannot store,
            // past its size): the refresh failed, and says so under its
            // lock, which releases it with the backoff.
            Err(e @ capstan_store::StoreError::Refused { .. })
                if !matches!(finish.outcome, RefreshOutcome::Failed { .. }) =>
            {
                finish.outcome = failed(format!("the database refused the refreshed value: {e}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    match written {
        Some(e) => {
            let e = Arc::new(e);
            remember(m, &e, stamp);
            announce(inner, &m.name, Some(key), Some(e.version)).await;
            Ok(Some(e))
        }
        None => {
            Counters::bump(&m.counters.fenced);
            tracing::info!(module = %m.name, key, "a refresh's result came after its entry moved on (lock taken over, put or invalidated): not written");
            Ok(None)
        }
    }
}

/// `d`, more or less `jitter` of it at random.
fn jittered(d: Duration, jitter: f64) -> Duration {
    let f = 1.0 + jitter * (rand::random::<f64>() * 2.0 - 1.0);
    d.mul_f64(f.max(0.0))
}
