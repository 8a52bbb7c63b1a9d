//! [`AnyStore`]: the backend chosen at run time from a URL. The runtime is
//! generic over [`Store`] (static dispatch); this enum erases the choice once,
//! at the edge (the CLI, or an application that reads its URL from config).

mod jobs;
mod leader;
mod modules;
mod nodes;
mod queues;
mod tx;

use capstan_store::{
    Capabilities, Notification, Notifications, Store, StoreError, StoreResult, Topic,
};
use capstan_store_postgres::PgStore;
use capstan_store_sqlite::SqliteStore;

/// SQLite or PostgreSQL, chosen by URL.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// The embedded backend.
    Sqlite(SqliteStore),
    /// The production backend.
    Postgres(PgStore),
}

impl AnyStore {
    /// Connect to `url`: `postgres://…` or `postgresql://…` for PostgreSQL;
    /// `sqlite://path`, `sqlite:path` or a plain file path for SQLite. Does
    /// not migrate.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the database cannot be opened.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(AnyStore::Postgres(PgStore::connect(url).await?))
        } else if url.contains("://") && !url.starts_with("sqlite://") {
            Err(StoreError::Connect {
                url: capstan_store::redact_url(url),
                message: "unknown database URL scheme: use postgres://… or sqlite://path".into(),
            })
        } else {
            Ok(AnyStore::Sqlite(SqliteStore::connect(url).await?))
        }
    }
}

/// The settings of either backend other than the URL: `[database.sqlite]`
/// and `[database.postgres]` in `capstan.toml`. Only the chosen backend's
/// apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseOptions {
    /// For a SQLite URL.
    pub sqlite: capstan_store_sqlite::SqliteOptions,
    /// For a PostgreSQL URL.
    pub postgres: capstan_store_postgres::PgOptions,
}

impl AnyStore {
    /// [`AnyStore::connect`] with `options` for the chosen backend.
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the database cannot be opened or an
    /// option cannot work.
    pub async fn connect_with(url: &str, options: &DatabaseOptions) -> StoreResult<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let config = capstan_store_postgres::PgConfig::with_options(url, &options.postgres)?;
            Ok(AnyStore::Postgres(PgStore::connect_with(config).await?))
        } else if url.contains("://") && !url.starts_with("sqlite://") {
            Self::connect(url).await
        } else {
            let config = capstan_store_sqlite::SqliteConfig::with_options(url, &options.sqlite)?;
            Ok(AnyStore::Sqlite(SqliteStore::connect_with(config).await?))
        }
    }
}

impl From<SqliteStore> for AnyStore {
    fn from(s: SqliteStore) -> Self {
        AnyStore::Sqlite(s)
    }
}

impl From<PgStore> for AnyStore {
    fn from(s: PgStore) -> Self {
        AnyStore::Postgres(s)
    }
}

/// Forward one method to whichever backend this is.
macro_rules! forward {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Postgres($s) => $call.await,
        }
    };
}
pub(crate) use forward;

pub use tx::AnyTx;

impl Store for AnyStore {
    type Tx = AnyTx<'static>;

    fn capabilities(&self) -> Capabilities {
        match self {
            AnyStore::Sqlite(s) => s.capabilities(),
            AnyStore::Postgres(s) => s.capabilities(),
        }
    }
    async fn migrate(&self) -> StoreResult<()> {
        forward!(self, s => s.migrate())
    }
    async fn check_schema(&self) -> StoreResult<()> {
        forward!(self, s => s.check_schema())
    }
    async fn begin(&self) -> StoreResult<AnyTx<'static>> {
        Ok(match self {
            AnyStore::Sqlite(s) => AnyTx::Sqlite(s.begin().await?),
            AnyStore::Postgres(s) => AnyTx::Postgres(s.begin().await?),
        })
    }
    async fn subscribe(&self, topics: &[Topic]) -> StoreResult<Notifications> {
        forward!(self, s => s.subscribe(topics))
    }
    async fn notify(&self, n: Notification) -> StoreResult<()> {
        forward!(self, s => s.notify(n.clone()))
    }
    async fn close(&self) {
        forward!(self, s => s.close())
    }
}
