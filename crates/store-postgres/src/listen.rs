//! The LISTEN connection: turns NOTIFYs into in-process wake-ups.
//!
//! NOTIFY is only a hint: after the connection drops and comes back, the
//! notifications sent meanwhile are lost, so once the new connection listens
//! again it sends [`Wakeup::All`] and every worker looks again.

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
    let mut listener = listen(&pool)
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
                _ if stop.is_cancelled() => break,
                // The connection dropped. Reconnect and LISTEN again first,
                // and only then tell everyone to look: a look before the
                // LISTEN is back could miss a job enqueued in between.
                lost => {
                    if let Err(e) = lost {
                        tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                    }
                    match reconnect(&pool, &stop).await {
                        Some(l) => listener = l,
                        None => break,
                    }
                    hub.send(Wakeup::All);
                }
            }
        }
    });
    Ok(())
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([JOBS_CHANNEL, CONTROL_CHANNEL]).await?;
    Ok(listener)
}

/// A new LISTEN connection, retried with backoff (1 s growing to 10 s) until
/// it works or the store stops.
async fn reconnect(pool: &PgPool, stop: &CancellationToken) -> Option<PgListener> {
    let mut pause = Duration::from_secs(1);
    loop {
        match listen(pool).await {
            Ok(l) => return Some(l),
            Err(e) => tracing::warn!(error = %e, retry_in = ?pause, "cannot LISTEN yet"),
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
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
