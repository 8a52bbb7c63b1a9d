//! Maintenance services: each does one job on an interval, has a
//! `run_once` for tests, and is safe to run on every node at once (the SQL
//! skips rows another node is working on).

pub(crate) mod cleaner;
pub(crate) mod parker;
pub(crate) mod rescuer;
pub(crate) mod scheduler;

use std::future::Future;
use std::time::Duration;

use capstan_store::{StoreError, StoreResult};

/// A maintenance call that has not answered after this long (a connection
/// that hangs without an error) is abandoned, so its service goes on.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `call`, abandoned as unavailable after [`CALL_TIMEOUT`].
pub(crate) async fn bounded<T>(
    operation: &'static str,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable {
                operation,
                source: format!("no answer within {CALL_TIMEOUT:?}").into(),
            })
        })
}
