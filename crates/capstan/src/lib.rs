//! Capstan: reliable background work for applications whose data lives in a
//! relational database. This crate is the one to depend on; it re-exports the
//! layers below it.
//!
//! ```ignore
//! use capstan::{AnyStore, Client, NewJob, Workers, Store};
//!
//! let store = AnyStore::connect("sqlite://capstan.db").await?; // or postgres://…
//! store.migrate().await?;
//! let client = Client::new(store);
//! client.enqueue(NewJob::new("capstan.noop", serde_json::json!({"hello": "world"}))).await?;
//! client.node(Workers::new())?.run(tokio::signal::ctrl_c().map(|_| ())).await?;
//! ```
//!
//! Layers, bottom up: [`core`] (domain types, no I/O), [`store`] (the storage
//! seam), the two backends [`sqlite`] and [`postgres`], [`runtime`]
//! (client, handlers, nodes) and beside it [`modules`] (the freshness
//! cache). [`AnyStore`] picks a backend from a URL.

mod any_store;

pub use any_store::{AnyStore, AnyTx, DatabaseOptions};
pub use capstan_core as core;
pub use capstan_core::{
    Clock, ErrorClass, Job, JobId, JobState, Lease, LeaseToken, ManualClock, NewJob, NodeId,
    RetryPolicy, SystemClock,
};
/// The freshness cache: modules of keyed values refreshed once per key
/// across nodes (see [`modules::Modules`]).
pub use capstan_modules as modules;
pub use capstan_runtime as runtime;
/// Installs rustls's `ring` crypto provider for the process (a second call
/// does nothing). Capstan builds reqwest on rustls without a provider of its
/// own, so that the process carries one crypto stack (sqlx's TLS uses
/// `ring` too); through Cargo's feature unification that holds for every
/// reqwest client in a program that links Capstan. Call it at the start of
/// `main` when your program builds reqwest clients of its own; Capstan's
/// own clients (push queues) call it themselves.
pub use capstan_runtime::push::install_tls;
pub use capstan_runtime::{
    Client, Config, Enqueued, Handler, JobContext, JobError, Node, NodeHandle, QueueConfig,
    RetryPolicies, RuntimeError, Workers,
};
pub use capstan_store as store;
pub use capstan_store::{JobStore, NodeStore, QueueStore, Store, StoreError, StoreTx, redact_url};
pub use capstan_store_postgres as postgres;
pub use capstan_store_postgres::PgStore;
pub use capstan_store_sqlite as sqlite;
pub use capstan_store_sqlite::SqliteStore;
