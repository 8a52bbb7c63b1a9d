//! The LISTEN connection: turns NOTIFYs into in-process wake-ups.
//!
//! NOTIFY is only a hint: after the connection drops and comes back, the
//! notifications sent meanwhile are lost, so a reconnect sends
//! [`Wakeup::All`] and every worker looks again.

use std::time::Duration;

use capstan_core::JobId;
use capstan_store::{StoreError, StoreResult, Wakeup, WakeupHub};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::{CONTROL_CHANNEL, JOBS_CHANNEL};

pub(crate) async fn spawn(
    pool: PgPool,
    hub: WakeupHub,
    stop: CancellationToken,
) -> StoreResult<()> {
    let mut listener = PgListener::connect_with(&pool)
        .await
        .map_err(|e| StoreError::database("subscribe", e))?;
    listener
        .listen_all([JOBS_CHANNEL, CONTROL_CHANNEL])
        .await
        .map_err(|e| StoreError::database("subscribe", e))?;
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                n = listener.try_recv() => n,
            };
            match next {
                Ok(Some(n)) => dispatch(&hub, n.channel(), n.payload()),
                // The connection dropped; the next try_recv reconnects. Hints
                // sent meanwhile are lost, so everyone looks again.
                Ok(None) => hub.send(Wakeup::All),
                Err(_) if stop.is_cancelled() => break,
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; retrying in 1 s");
                    hub.send(Wakeup::All);
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    });
    Ok(())
}

fn dispatch(hub: &WakeupHub, channel: &str, payload: &str) {
    if channel == CONTROL_CHANNEL {
        if let Some(id) = payload.strip_prefix("cancel:").and_then(|s| s.parse().ok()) {
            hub.send(Wakeup::Cancel(JobId(id)));
        }
        return;
    }
    if payload == "*" || payload.is_empty() {
        hub.send(Wakeup::All);
        return;
    }
    for queue in payload.split(',') {
        hub.send(Wakeup::Queue(queue.to_owned()));
    }
}
