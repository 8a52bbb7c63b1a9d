//! One module per command; each returns the process exit code.

pub(crate) mod bench;
pub(crate) mod config;
pub(crate) mod enqueue;
pub(crate) mod jobs;
pub(crate) mod migrate;
pub(crate) mod queues;
pub(crate) mod serve;
pub(crate) mod token;
