//! Refreshers: what fetches a key's value from its source. A Rust function
//! here; an HTTP URL template and a job kind (so a worker in any language
//! can refresh) build on the same trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

/// What a refresh found.
#[derive(Debug, Clone, PartialEq)]
pub enum Refreshed {
    /// The key's value.
    Value(Value),
    /// The source has nothing for this key (remembered for the module's
    /// `negative_ttl`).
    NotFound,
}

/// A failed refresh: its message goes into the entry and the stats.
pub type RefreshError = Box<dyn std::error::Error + Send + Sync>;

/// The future a refresher returns.
pub type RefreshFuture = Pin<Box<dyn Future<Output = Result<Refreshed, RefreshError>> + Send>>;

/// Fetches a key's value. Called at most once at a time per key across
/// every node; it may fail, time out or panic: the lock is released with
/// the failure either way.
pub trait Refresher: Send + Sync + 'static {
    /// Fetch `key` (as normalized by its module).
    fn refresh(&self, key: String) -> RefreshFuture;
}

impl std::fmt::Debug for dyn Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Refresher")
    }
}

struct FnRefresher<F>(F);

impl<F, Fut> Refresher for FnRefresher<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Refreshed, RefreshError>> + Send + 'static,
{
    fn refresh(&self, key: String) -> RefreshFuture {
        Box::pin((self.0)(key))
    }
}

/// A refresher from an async function of the key.
pub fn refresher_fn<F, Fut>(f: F) -> Arc<dyn Refresher>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Refreshed, RefreshError>> + Send + 'static,
{
    Arc::new(FnRefresher(f))
}
