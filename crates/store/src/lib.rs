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

mod batch;
mod capabilities;
mod error;
mod notify;
mod params;
mod report;
mod traits;
mod tx;
mod url;

pub use batch::{FinishRow, InsertRow, encode, extension_rows_json, finish_rows_json};
pub use capabilities::Capabilities;
pub use error::{NODE_PROTOCOL_VERSION, StoreError, StoreResult};
pub use notify::{
    ControlHint, JobsHint, MAX_PAYLOAD, Notification, NotificationHub, Notifications, Received,
    Topic,
};
pub use params::*;
pub use report::{fail_corrupt, sort_in_claim_order};
pub use traits::{JobStore, NodeStore, QueueStore, Store};
pub use tx::StoreTx;
pub use url::redact_url;

pub use capstan_core as core;
