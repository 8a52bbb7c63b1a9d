//! Opening the PostgreSQL pool.

use std::str::FromStr;
use std::time::Duration;

use capstan_store::{StoreError, StoreResult, redact_url};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// How to connect to PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// The connection URL.
    pub url: String,
    /// Pool size. Claims, finishes, heartbeats and enqueues share it; the
    /// LISTEN connection is extra.
    pub max_connections: u32,
    /// How long to wait for a free connection.
    pub acquire_timeout: Duration,
    /// How long the first connection may take before opening fails with its
    /// cause (connection refused, unknown host, authentication failed).
    pub connect_timeout: Duration,
}

/// The settings of a PostgreSQL connection other than its URL:
/// `[database.postgres]` in `capstan.toml` (durations as `30s`; unknown keys
/// refused).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgOptions {
    /// Pool size (claims, enqueues, reads; finishes and heartbeats have
    /// small pools of their own, and LISTEN one connection).
    pub max_connections: u32,
    /// How long a call waits for a free connection.
    #[serde(with = "capstan_core::humantime_serde")]
    pub acquire_timeout: Duration,
    /// How long the first connection may take before opening fails.
    #[serde(with = "capstan_core::humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: PgConfig::DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl PgConfig {
    /// The server at `url` with `options`.
    ///
    /// # Errors
    /// As [`PgConfig::from_url`]; [`StoreError::Connect`] for a pool of zero.
    pub fn with_options(url: &str, options: &PgOptions) -> StoreResult<Self> {
        if options.max_connections == 0 {
            return Err(StoreError::Connect {
                url: redact_url(url),
                message: "database.postgres.max_connections must be at least 1".into(),
            });
        }
        Ok(PgConfig {
            max_connections: options.max_connections,
            acquire_timeout: options.acquire_timeout,
            connect_timeout: options.connect_timeout,
            ..Self::from_url(url)?
        })
    }

    /// Pool size when nothing else is configured.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

    /// Settings for `url`.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the URL is not a PostgreSQL URL.
    pub fn from_url(url: &str) -> StoreResult<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Connect {
                url: redact_url(url),
                message:
                    "not a PostgreSQL URL: expected postgres://user:password@host:port/database"
                        .into(),
            });
        }
        let d = PgOptions::default();
        Ok(PgConfig {
            url: url.to_owned(),
            max_connections: d.max_connections,
            acquire_timeout: d.acquire_timeout,
            connect_timeout: d.connect_timeout,
        })
    }
}

pub(crate) async fn open_pool(config: &PgConfig) -> StoreResult<PgPool> {
    let connect_err = |message: String| StoreError::Connect {
        url: redact_url(&config.url),
        message,
    };
    let opts = PgConnectOptions::from_str(&config.url).map_err(|e| connect_err(e.to_string()))?;
    // One direct connection first: a pool retries a failing connect until
    // its acquire timeout and then reports only "timed out", where the user
    // needs the cause.
    // The server not answering may pass (it is starting, failing over):
    // `Unavailable`, which `serve` retries. A refused login or a missing
    // database will not: `Connect`.
    let unreachable = |message: String| StoreError::Unavailable {
        operation: "connect",
        source: connect_err(message).to_string().into(),
    };
    match tokio::time::timeout(config.connect_timeout, opts.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        Ok(Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Tls(_)))) => {
            return Err(unreachable(explain(&e)));
        }
        Ok(Err(e)) => return Err(connect_err(explain(&e))),
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {:?} (is the host reachable, and the port right?)",
                config.connect_timeout
            )));
        }
    }
    PgPoolOptions::new()
        // No ping before each use: it would double the round trips of every
        // claim and finish. A broken connection fails its query, is dropped
        // by the pool, and the caller's retry gets a fresh one.
        .test_before_acquire(false)
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(opts)
        .await
        .map_err(|e| connect_err(explain(&e)))
}

/// A small pool of Capstan's own (see `Inner::control`, `Inner::beat`),
/// opened lazily with the options of `pool`.
pub(crate) fn side_pool(pool: &PgPool, size: u32) -> PgPool {
    PgPoolOptions::new()
        .test_before_acquire(false)
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// How many nodes of a schema older than [`capstan_store::NODE_PROTOCOL_VERSION`]
/// beat within the last minute (0 on a fresh or up-to-date database).
/// The newest migration applied (0 on a database without Capstan's schema).
pub(crate) async fn schema_version(pool: &PgPool) -> StoreResult<i64> {
    let err = |e| StoreError::database("check_schema", e);
    let table: Option<i64> = sqlx::query_scalar(
        "SELECT CASE WHEN to_regclass('capstan.migrations') IS NULL THEN NULL ELSE 0 END::bigint",
    )
    .fetch_one(pool)
    .await
    .map_err(err)?;
    if table.is_none() {
        return Ok(0);
    }
    sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM capstan.migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_err(err)
}

pub(crate) async fn live_older_nodes(pool: &PgPool) -> StoreResult<i64> {
    let err = |e| StoreError::database("migrate", e);
    let version = schema_version(pool).await?;
    if version == 0 || version >= capstan_store::NODE_PROTOCOL_VERSION {
        return Ok(0);
    }
    sqlx::query_scalar(
        "SELECT count(*) FROM capstan.nodes WHERE heartbeat_at > now() - interval '1 minute'",
    )
    .fetch_one(pool)
    .await
    .map_err(err)
}

/// A connect error with what to check.
fn explain(e: &sqlx::Error) -> String {
    let hint = match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "is the server running, and listening on this host and port?"
        }
        sqlx::Error::Io(_) => "is the host name right, and the server reachable from here?",
        sqlx::Error::Database(d) if d.code().as_deref() == Some("28P01") => {
            "check the user name and password in the URL"
        }
        sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000") => {
            "create the database, or fix its name in the URL"
        }
        sqlx::Error::Database(_) => "check the user, password and database in the URL",
        _ => "is the server running and does the database exist?",
    };
    format!("{e} ({hint})")
}
