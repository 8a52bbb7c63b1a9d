//! What can go wrong with a read or a write of a module.

use std::time::Duration;

use capstan_core::Timestamp;
use capstan_store::StoreError;

/// A module operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// No module of that name is configured.
    #[error("no module named {name:?} (configured: {known})")]
    UnknownModule {
        /// The name asked for.
        name: String,
        /// The configured ones.
        known: String,
    },
    /// A module's settings are not usable.
    #[error("{message}")]
    Config {
        /// What is wrong, naming the setting.
        message: String,
    },
    /// The key cannot be stored.
    #[error("invalid key for module {module}: {message}")]
    InvalidKey {
        /// The module.
        module: String,
        /// Why.
        message: String,
    },
    /// The last refresh failed and there is no value, fresh or stale, to
    /// serve.
    #[error(
        "{module}/{key}: the refresh failed and there is no value to serve: {message}{}",
        retry_at.map(|t| format!(" (next try at {t})")).unwrap_or_default()
    )]
    Refresh {
        /// The module.
        module: String,
        /// The key.
        key: String,
        /// The refresher's error.
        message: String,
        /// When the next refresh may run.
        retry_at: Option<Timestamp>,
    },
    /// Nothing to serve within the module's `wait_timeout`: a refresh (on
    /// this node or another) is still running.
    #[error(
        "{module}/{key}: no value within {waited:?}; a refresh is still running (raise modules.{module}.wait_timeout to wait longer)"
    )]
    Timeout {
        /// The module.
        module: String,
        /// The key.
        key: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The database did not answer while a refresh was under way.
    #[error("{module}/{key}: the database did not answer: {message} (retrying may help)")]
    Unavailable {
        /// The module.
        module: String,
        /// The key.
        key: String,
        /// The store's error.
        message: String,
    },
    /// The value is not of the type asked for.
    #[error("{module}/{key}: the value is not of the type asked for: {source}")]
    Decode {
        /// The module.
        module: String,
        /// The key.
        key: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// The database's error.
    #[error(transparent)]
    Store(#[from] StoreError),
}
