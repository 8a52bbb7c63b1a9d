//! Opening the SQLite file: WAL, a busy timeout for writers in other
//! processes, one writer connection and a few readers.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use capstan_store::{StoreError, StoreResult};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// How to open a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file.
    pub path: PathBuf,
    /// `synchronous = FULL` (fsync every commit: survives power loss) instead
    /// of `NORMAL` (survives a crash or kill of the process, the default).
    pub synchronous_full: bool,
    /// How long a write waits for another process's write to finish.
    pub busy_timeout: Duration,
    /// Reader connections.
    pub readers: u32,
}

/// The settings of a SQLite database other than its path: `[database.sqlite]`
/// in `capstan.toml` (durations as `30s`; unknown keys refused).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteOptions {
    /// `synchronous = FULL`: fsync every commit (survives power loss), at a
    /// cost in write throughput; the default `NORMAL` survives a crash or
    /// kill of the process.
    pub synchronous_full: bool,
    /// How long a write waits for another process's write to finish.
    #[serde(with = "capstan_core::humantime_serde")]
    pub busy_timeout: Duration,
    /// Reader connections beside the one writer.
    pub readers: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: false,
            busy_timeout: SqliteConfig::DEFAULT_BUSY_TIMEOUT,
            readers: SqliteConfig::DEFAULT_READERS,
        }
    }
}

impl SqliteConfig {
    /// The database at `url` with `options`.
    ///
    /// # Errors
    /// As [`SqliteConfig::from_url`]; [`StoreError::Connect`] for zero readers.
    pub fn with_options(url: &str, options: &SqliteOptions) -> StoreResult<Self> {
        if options.readers == 0 {
            return Err(StoreError::Connect {
                url: url.to_owned(),
                message: "database.sqlite.readers must be at least 1".into(),
            });
        }
        Ok(SqliteConfig {
            synchronous_full: options.synchronous_full,
            busy_timeout: options.busy_timeout,
            readers: options.readers,
            ..Self::from_url(url)?
        })
    }

    /// Readers when nothing else is configured.
    pub const DEFAULT_READERS: u32 = 4;
    /// Busy timeout when nothing else is configured.
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

    /// Settings for `url`: `sqlite://path`, `sqlite:path` or a plain path.
    ///
    /// # Errors
    /// [`StoreError::Connect`] for an in-memory URL (each connection would see
    /// its own database) or an empty path.
    pub fn from_url(url: &str) -> StoreResult<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() || path.contains(":memory:") || path.starts_with("file::memory") {
            return Err(StoreError::Connect {
                url: url.to_owned(),
                message: "an in-memory or empty SQLite path cannot be shared by Capstan's \
                          connections: give a file path, e.g. sqlite://capstan.db"
                    .into(),
            });
        }
        Ok(SqliteConfig {
            path: PathBuf::from(path),
            synchronous_full: false,
            busy_timeout: Self::DEFAULT_BUSY_TIMEOUT,
            readers: Self::DEFAULT_READERS,
        })
    }

    pub(crate) fn options(&self) -> StoreResult<SqliteConnectOptions> {
        let display = self.path.display().to_string();
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{display}"))
            .map_err(|e| StoreError::Connect {
                url: display.clone(),
                message: e.to_string(),
            })?
            .filename(&self.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if self.synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(self.busy_timeout)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        Ok(opts)
    }
}

pub(crate) async fn open_pools(config: &SqliteConfig) -> StoreResult<(SqlitePool, SqlitePool)> {
    let opts = config.options()?;
    let connect_err = |e: sqlx::Error| StoreError::Connect {
        url: config.path.display().to_string(),
        message: format!("{e} (check that the directory exists and is writable)"),
    };
    // No ping before each use (a round trip to the connection's thread):
    // a local file connection does not go stale.
    let writer = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(120))
        .connect_with(opts.clone())
        .await
        .map_err(connect_err)?;
    let reader = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .max_connections(config.readers.max(1))
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(opts)
        .await
        .map_err(connect_err)?;
    Ok((writer, reader))
}
