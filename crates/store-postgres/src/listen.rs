//! The LISTEN connection: one per store, turning NOTIFYs on Capstan's
//! channels (`capstan_<topic>`) into in-process notifications.
//!
//! Topics are added as subscribers ask for them: [`Listener::listen`] returns
//! once the connection LISTENs to every topic asked for, so a notification
//! sent after it returns reaches the subscriber. NOTIFY is only a hint: after
//! the connection drops and comes back, the notifications sent meanwhile are
//! lost, so once the new connection listens again it sends
//! [`capstan_store::Received::Missed`] and every subscriber looks again.

use std::collections::BTreeSet;
use std::time::Duration;

use capstan_store::{Notification, NotificationHub, StoreError, StoreResult, Topic};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A request to LISTEN to more topics, answered once they are listened to.
type Request = (Vec<Topic>, oneshot::Sender<Result<(), String>>);

/// The handle on the LISTEN task.
#[derive(Debug)]
pub(crate) struct Listener {
    requests: mpsc::UnboundedSender<Request>,
}

impl Listener {
    /// Start the task (connecting at once, so a bad server fails here).
    pub(crate) async fn spawn(
        pool: PgPool,
        hub: NotificationHub,
        stop: CancellationToken,
    ) -> StoreResult<Listener> {
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(|e| StoreError::database("subscribe", e))?;
        // A lost connection must surface as `Ok(None)` at once, so that the
        // reconnect (and the `Missed` after it) is ours: sqlx's own eager
        // reconnect inside `try_recv` would be cut short when a subscribe
        // request wins the `select!`, and the `Missed` never sent.
        listener.eager_reconnect(false);
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(listener, pool, hub, rx, stop));
        Ok(Listener { requests })
    }

    /// LISTEN to `topics` (those not listened to yet).
    pub(crate) async fn listen(&self, topics: &[Topic]) -> StoreResult<()> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Unavailable {
            operation: "subscribe",
            source: "the LISTEN connection stopped (the store is closing)".into(),
        };
        self.requests
            .send((topics.to_vec(), tx))
            .map_err(|_| gone())?;
        rx.await
            .map_err(|_| gone())?
            .map_err(|e| StoreError::Unavailable {
                operation: "subscribe",
                source: e.into(),
            })
    }
}

async fn run(
    mut listener: PgListener,
    pool: PgPool,
    hub: NotificationHub,
    mut requests: mpsc::UnboundedReceiver<Request>,
    stop: CancellationToken,
) {
    let mut topics: BTreeSet<Topic> = BTreeSet::new();
    loop {
        // Waiting in `try_recv` is cancel-safe (sqlx buffers partial
        // messages) and, without eager reconnect, it never reconnects
        // inside itself; so a request may interrupt the wait.
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            r = requests.recv() => {
                let Some((asked, reply)) = r else { break };
                let new: Vec<Topic> = asked.into_iter().filter(|t| !topics.contains(t)).collect();
                let channels: Vec<String> = new.iter().map(|t| crate::channel(*t)).collect();
                // Remembered even if LISTEN fails: the reconnect below then
                // listens to them, and its `Missed` covers the gap.
                topics.extend(new);
                match listener.listen_all(channels.iter().map(String::as_str)).await {
                    Ok(()) => {
                        let _ = reply.send(Ok(()));
                        continue;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(format!("LISTEN failed: {e}")));
                        Err(e)
                    }
                }
            }
            n = listener.try_recv() => n,
        };
        match next {
            Ok(Some(n)) => dispatch(&hub, &topics, n.channel(), n.payload()),
            _ if stop.is_cancelled() => break,
            // The connection dropped. Reconnect and LISTEN again first,
            // and only then tell everyone to look: a look before the
            // LISTEN is back could miss a job enqueued in between.
            lost => {
                if let Err(e) = lost {
                    tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                }
                match reconnect(&pool, &topics, &stop).await {
                    Some(l) => listener = l,
                    None => break,
                }
                hub.missed();
            }
        }
    }
}

/// A new LISTEN connection on `topics`, retried with backoff (1 s growing to
/// 10 s) until it works or the store stops.
async fn reconnect(
    pool: &PgPool,
    topics: &BTreeSet<Topic>,
    stop: &CancellationToken,
) -> Option<PgListener> {
    let channels: Vec<String> = topics.iter().map(|t| crate::channel(*t)).collect();
    let mut pause = Duration::from_secs(1);
    loop {
        let attempt = async {
            let mut l = PgListener::connect_with(pool).await?;
            l.eager_reconnect(false);
            l.listen_all(channels.iter().map(String::as_str)).await?;
            Ok::<_, sqlx::Error>(l)
        };
        match attempt.await {
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

/// Hand a NOTIFY to the hub under its topic (one of those listened to).
fn dispatch(hub: &NotificationHub, topics: &BTreeSet<Topic>, channel: &str, payload: &str) {
    let name = channel
        .strip_prefix(crate::CHANNEL_PREFIX)
        .unwrap_or(channel);
    if let Some(topic) = topics.iter().find(|t| t.name() == name) {
        hub.send(Notification::new(*topic, payload));
    }
}
