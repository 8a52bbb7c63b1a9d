//! Maintenance services: each does one job on an interval, has a
//! `run_once` for tests, and is safe to run on every node at once (the SQL
//! skips rows another node is working on).

pub(crate) mod cleaner;
pub(crate) mod parker;
pub(crate) mod rescuer;
pub(crate) mod scheduler;
