//! The storage seam: what the runtime needs from a database, and nothing about
//! how a database does it.
//!
//! Two backends implement these traits (SQLite and PostgreSQL) and one
//! conformance suite checks that they behave the same. The invariants every
//! implementation keeps:
//! - a job is held by at most one lease at a time, and a lease token never
//!   repeats;
//! - every state change of a running job matches its id, its lease token and
//!   `state = 'running'`; a mismatch is [`StoreError::Fenced`] or a fenced
//!   row in a [`LeaseReport`], never a silent success;
//! - a job a user asked to cancel never waits or runs again;
//! - enqueue keys hold under concurrency through unique indexes, never by
//!   check-then-insert;
//! - `now: None` in a params struct means the database's own clock.
//!
//! One module per noun ([`jobs`], [`nodes`], [`queues`], [`leader`],
//! [`modules`] (the freshness cache); later events, sequences), each holding its trait and its params; the
//! seam-wide parts (the [`Store`] trait, [`StoreTx`], notifications,
//! errors) sit at the root.

pub mod jobs;
pub mod leader;
pub mod modules;
pub mod nodes;
pub mod queues;

mod capabilities;
mod error;
mod notify;
mod store;
mod tx;
mod url;

pub use capabilities::Capabilities;
pub use error::{NODE_PROTOCOL_VERSION, StoreError, StoreResult};
pub use jobs::JobStore;
pub use leader::LeaderStore;
pub use modules::ModuleStore;
pub use nodes::NodeStore;
pub use notify::{
    ControlHint, JobsHint, MAX_PAYLOAD, Notification, NotificationHub, Notifications, Received,
    Topic,
};
pub use queues::QueueStore;
pub use store::Store;
pub use tx::StoreTx;
pub use url::redact_url;

pub use capstan_core as core;
