//! Queue bells: the claims of pull workers waiting on a queue wake as soon
//! as the database says jobs became available there. One subscription per
//! process, however many workers wait; a hint for "any queue", or word that
//! hints were lost, rings every bell.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use capstan_store::{JobsHint, Notifications, Received, Topic};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One bell per queue that someone waited on.
#[derive(Debug, Default)]
pub(crate) struct Bells {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Bells {
    /// The bell of `queue` (made on first use).
    pub(crate) fn bell(&self, queue: &str) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.entry(queue.to_owned()).or_default().clone()
    }

    /// Wake every claim waiting on `queue`.
    fn ring(&self, queue: &str) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bell) = queues.get(queue) {
            bell.notify_waiters();
        }
    }

    /// Wake every waiting claim.
    fn ring_all(&self) {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        for bell in queues.values() {
            bell.notify_waiters();
        }
    }
}

/// The topics the bells listen to (and [`crate::changes::WATCH`], which
/// makes this process send change hints).
pub(crate) const TOPICS: [Topic; 2] = [Topic::JOBS, crate::changes::WATCH];

/// Ring the bells on every hint, until `stop` or until the store is gone.
pub(crate) async fn listen(
    mut notifications: Notifications,
    bells: Arc<Bells>,
    hints: Arc<crate::changes::Hints>,
    stop: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            r = notifications.recv() => r,
            () = stop.cancelled() => break,
        };
        match received {
            Some(Received::Notification(n)) if n.topic == crate::changes::WATCH => hints.watched(),
            Some(Received::Notification(n)) => match JobsHint::parse(&n.payload) {
                JobsHint::Queues(queues) => {
                    for q in queues {
                        bells.ring(q);
                    }
                }
                JobsHint::Any => bells.ring_all(),
            },
            Some(Received::Missed) => bells.ring_all(),
            None => break,
        }
    }
    // Nobody rings any more: let the waiting claims look once more now
    // rather than at their fallback.
    bells.ring_all();
}
