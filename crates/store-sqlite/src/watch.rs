//! Cross-process wake-ups on SQLite. SQLite has no LISTEN/NOTIFY, but
//! `PRAGMA data_version` changes on a connection whenever *another*
//! connection commits to the file. The watcher reads it every
//! [`WATCH_INTERVAL`] (a read of shared memory in WAL mode, no disk I/O) and
//! sends [`Received::Missed`] on change (it cannot know what changed), so a job enqueued by another process (the
//! CLI, say) starts within that interval instead of at the next idle poll.
//!
//! It reads it on this process's one writer connection: every write of this
//! process goes through that connection, so its `data_version` moves only
//! when another process commits. (A connection of its own would see this
//! process's commits too, and wake every idle producer after each of them.)

use std::sync::Weak;
use std::time::Duration;

#[cfg(doc)]
use capstan_store::Received;
use capstan_store::StoreResult;

use crate::Inner;
use crate::row::db;

/// How often the watcher reads `data_version`.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(50);

async fn data_version(inner: &Inner) -> StoreResult<i64> {
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(&inner.writer)
        .await
        .map_err(db("subscribe"))
}

/// Start the watcher; it stops when the store is dropped or closed.
pub(crate) async fn spawn(inner: &std::sync::Arc<Inner>) -> StoreResult<()> {
    let mut last = data_version(inner).await?;
    let weak: Weak<Inner> = std::sync::Arc::downgrade(inner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { break };
            if inner.writer.is_closed() {
                break;
            }
            match data_version(&inner).await {
                Ok(v) if v != last => {
                    last = v;
                    inner.hub.missed();
                }
                Ok(_) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => {
                    tracing::warn!(error = %e, "sqlite wake-up watcher stopped; idle polling remains");
                    break;
                }
            }
        }
    });
    Ok(())
}
