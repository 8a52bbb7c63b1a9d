//! The harness trait every backend provides to the suite, and a temporary
//! directory that removes itself.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use capstan_core::ManualClock;
use capstan_store::Store;

/// A fresh, migrated database for one test case, and a pinned clock.
pub trait Harness: Sized + Send + Sync + 'static {
    /// The backend under test.
    type Store: Store;

    /// A fresh database (temp file or new PostgreSQL database), migrated.
    fn new(test: &str) -> impl Future<Output = Self> + Send;

    /// The store on it.
    fn store(&self) -> &Self::Store;

    /// The test's clock; cases pass `self.now()` as every `now`.
    fn clock(&self) -> &ManualClock;

    /// A second, independent store on the same database (as another process
    /// would open it).
    fn connect_again(&self) -> impl Future<Output = Self::Store> + Send;

    /// Run raw SQL inside a transaction of the store, as an application's
    /// own writes beside Capstan's would (through the backend's connection
    /// type, which generic cases cannot name).
    fn execute_in(
        tx: &mut <Self::Store as Store>::Tx,
        sql: &str,
    ) -> impl Future<Output = ()> + Send;

    /// A URL for the database (for the CLI tests).
    fn url(&self) -> String;

    /// The full name of Capstan's table `name` (`jobs`, `nodes`) on this backend.
    fn table(&self, name: &str) -> String;

    /// Run raw SQL on the test database, as an operator or an older version
    /// might (cases use it to write rows validation would refuse).
    fn execute(&self, sql: &str) -> impl Future<Output = ()> + Send;

    /// Run a query that returns one integer (a count, usually).
    fn count(&self, sql: &str) -> impl Future<Output = i64> + Send;

    /// Hold a row lock on job `id` in a transaction of its own until the
    /// returned guard is dropped; `None` where the backend has no row locks
    /// (SQLite serializes writers instead).
    fn lock_job(&self, id: capstan_core::JobId) -> impl Future<Output = Option<RowLock>> + Send;
}

/// The future that ends a [`RowLock`]'s transaction.
type Release = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A row lock held by [`Harness::lock_job`]. [`RowLock::release`] rolls its
/// transaction back and returns once the lock is gone; a plain drop only
/// schedules the rollback (sqlx runs it later), so a case that goes on
/// right after a drop may still find the row locked.
pub struct RowLock {
    release: Box<dyn FnOnce() -> Release + Send>,
}

impl RowLock {
    /// A lock that `release` ends (by rolling its transaction back).
    pub fn new(release: impl FnOnce() -> Release + Send + 'static) -> Self {
        RowLock {
            release: Box::new(release),
        }
    }

    /// Roll back, and return once the lock is released.
    pub async fn release(self) {
        (self.release)().await;
    }
}

impl std::fmt::Debug for RowLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowLock")
    }
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Create `capstan-<label>-<pid>-<n>`.
    ///
    /// # Panics
    /// When the directory cannot be created (a broken test machine).
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let safe: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let path = std::env::temp_dir().join(format!("capstan-{safe}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
