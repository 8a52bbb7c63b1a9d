//! Capstan's runtime: what runs on top of the storage seam.
//!
//! - [`Client`]: enqueue, inspect, cancel, retry, wait — from any process.
//! - [`Handler`] and [`Workers`]: the code that runs a kind of job.
//! - [`Node`]: one process that serves queues. Inside it, one service per job:
//!   a `Producer` per queue claims batches, the `Executor` runs each job under
//!   its timeout and cancellation, the `Completer` writes finishes in batches,
//!   the `Heartbeat` keeps the node alive, hears cancel requests and stops
//!   handlers whose jobs were taken away, and the maintenance services
//!   promote due jobs (`Scheduler`), rescue lost ones (`Rescuer`), set aside
//!   the ones no live node can run (`Parker`) and delete old ones (`Cleaner`).
//!
//! Shutdown is in two steps: stop claiming and let running jobs finish within
//! the grace period; then cancel what is left and hand it back to its queue
//! without burning an attempt.

mod builtin;
pub mod changes;
mod client;
mod completer;
mod config;
mod context;
mod dispatch;
mod enqueuer;
mod error;
mod executor;
mod handler;
mod heartbeat;
mod leases;
mod maintenance;
mod node;
mod prefetch;
mod producer;
mod pull;
pub mod push;
mod running;
pub mod verdict;

/// The maintenance services' cases, at the root where `on_both_backends!` looks.
#[cfg(test)]
pub(crate) use maintenance::tests as maintenance_tests;

pub use builtin::{FailArgs, SleepArgs};
pub use client::{Client, Enqueued};
pub use config::{Config, QueueConfig, RetryPolicies};
pub use context::JobContext;
pub use error::{JobError, RuntimeError};
pub use handler::{Handler, Workers};
pub use node::{Node, NodeHandle};
pub use pull::{
    Beaten, PULL_INCARNATION, PullBeat, PullClaim, PullConfig, PullFailure, PullWorkers,
};
pub use verdict::Verdict;

pub use capstan_core as core;
pub use capstan_store as store;
