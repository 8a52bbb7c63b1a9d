//! Capstan's freshness cache: **modules** of keyed values, each refreshed
//! from its source at most once at a time per key across every node that
//! shares the database, served from memory (L1) or the database (L2) while
//! fresh, served stale while a refresh runs (stale-while-revalidate) or
//! while refreshes fail (stale-if-error), refreshed ahead of expiry when a
//! key is busy, and remembering "not found" for a while (negative cache).
//!
//! ```ignore
//! let modules = Modules::builder(store)
//!     .module("quotes", ModuleConfig::with_ttl(Duration::from_secs(15)),
//!             refresher_fn(|ticker| async move { fetch_quote(&ticker).await }))
//!     .start(stop)
//!     .await?;
//! let (quote, got) = modules.get_as::<Quote>("quotes", "NVDA").await?;
//! ```
//!
//! The entries, their lock and its fencing version live behind the store
//! seam's [`capstan_store::ModuleStore`]; this crate is the policy over
//! them ([`Modules`]) and the word between nodes (the [`MODULES`] topic).

mod change;
mod config;
mod error;
mod refresher;
mod service;
mod stats;

pub use capstan_store::modules::{EntryStatus, ModuleEntry};
pub use change::MODULES;
pub use config::ModuleConfig;
pub use error::ModuleError;
pub use refresher::{RefreshError, RefreshFuture, Refreshed, Refresher, refresher_fn};
pub use service::{Got, Modules, ModulesBuilder, Served};
pub use stats::ModuleStats;

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// Check a module's name: 1 to 100 of `a-z 0-9 _ . -` (it appears in URLs,
/// CLI arguments and configuration keys).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a module name: 1 to 100 of a-z 0-9 _ . -"
        ))
    }
}
