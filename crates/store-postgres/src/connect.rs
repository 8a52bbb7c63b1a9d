//! Opening the PostgreSQL pool.

use std::str::FromStr;
use std::time::Duration;

use capstan_store::{StoreError, StoreResult};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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
}

impl PgConfig {
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
        Ok(PgConfig {
            url: url.to_owned(),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: Duration::from_secs(30),
        })
    }
}

/// `url` with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(crate) async fn open_pool(config: &PgConfig) -> StoreResult<PgPool> {
    let connect_err = |message: String| StoreError::Connect {
        url: redact_url(&config.url),
        message,
    };
    let opts = PgConnectOptions::from_str(&config.url).map_err(|e| connect_err(e.to_string()))?;
    PgPoolOptions::new()
        // No ping before each use: it would double the round trips of every
        // claim and finish. A broken connection fails its query, is dropped
        // by the pool, and the caller's retry gets a fresh one.
        .test_before_acquire(false)
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(opts)
        .await
        .map_err(|e| {
            connect_err(format!(
                "{e} (is the server running and does the database exist?)"
            ))
        })
}
