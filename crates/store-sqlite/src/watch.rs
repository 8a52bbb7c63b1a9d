//! Cross-process wake-ups on SQLite. SQLite has no LISTEN/NOTIFY, but
//! `PRAGMA data_version` changes on a connection whenever *another*
//! connection commits to the file. A dedicated connection reads it every
//! [`WATCH_INTERVAL`] (a read of shared memory in WAL mode, no disk I/O) and
//! sends [`Wakeup::All`] on change, so a job enqueued by another process (the
//! CLI, say) starts within that interval instead of at the next idle poll.

use std::time::Duration;

use std::sync::Weak;

use capstan_store::{StoreError, StoreResult, Wakeup};
use sqlx::{ConnectOptions, Connection};

use crate::Inner;

/// How often the watcher reads `data_version`.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(50);

/// Start the watcher; it stops when the store is dropped or closed.
pub(crate) async fn spawn(inner: &std::sync::Arc<Inner>) -> StoreResult<()> {
    let mut conn = inner
        .config
        .options()?
        .connect()
        .await
        .map_err(|e| StoreError::database("subscribe", e))?;
    let mut last: i64 = sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| StoreError::database("subscribe", e))?;
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
            match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(&mut conn)
                .await
            {
                Ok(v) if v != last => {
                    last = v;
                    inner.hub.send(Wakeup::All);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "sqlite wake-up watcher stopped; idle polling remains");
                    break;
                }
            }
        }
        let _ = conn.close().await;
    });
    Ok(())
}
