//! Routing notifications: "jobs in queue q" wakes q's producer, "jobs
//! anywhere" or a missed hint wakes every producer and the scheduler,
//! "cancel job j" cancels j's handler if this node runs it. The runtime owns
//! the [`Topic::JOBS`] and [`Topic::CONTROL`] payloads' meaning; the store
//! only carries them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use capstan_store::{ControlHint, JobsHint, Notifications, Received, Store, Topic};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::running::Shared;

/// A producer's doorbell, rung when jobs may have become available in its
/// queue. Like a `Notify` it keeps one ring for the next wait; it also keeps
/// it, separately, until the producer asks whether it rang, so that a
/// producer busy claiming (which resumes each claim where the last one
/// ended) still learns that jobs may have arrived ahead of that point.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    notify: Notify,
    rang: AtomicBool,
}

impl Wake {
    /// Jobs may have become available.
    pub(crate) fn ring(&self) {
        self.rang.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Wait for a ring (one that came before the wait counts).
    pub(crate) async fn rung(&self) {
        self.notify.notified().await;
    }

    /// Whether it rang since the last call.
    pub(crate) fn take(&self) -> bool {
        self.rang.swap(false, Ordering::AcqRel)
    }
}

/// The topics a node subscribes to.
pub(crate) const TOPICS: [Topic; 3] = [Topic::JOBS, Topic::CONTROL, crate::changes::WATCH];

pub(crate) async fn run<S: Store>(
    mut notifications: Notifications,
    producers: BTreeMap<String, Arc<Wake>>,
    scheduler: Arc<Notify>,
    shared: Arc<Shared<S>>,
    stop: CancellationToken,
) {
    let everyone = || {
        for w in producers.values() {
            w.ring();
        }
        scheduler.notify_one();
    };
    loop {
        let received = tokio::select! {
            r = notifications.recv() => r,
            () = stop.cancelled() => break,
        };
        match received {
            Some(Received::Notification(n)) if n.topic == Topic::JOBS => {
                match JobsHint::parse(&n.payload) {
                    JobsHint::Queues(queues) => {
                        for q in queues {
                            if let Some(w) = producers.get(q) {
                                w.ring();
                            }
                        }
                    }
                    JobsHint::Any => everyone(),
                }
            }
            Some(Received::Notification(n)) if n.topic == Topic::CONTROL => {
                if let Some(ControlHint::Cancel(id)) = ControlHint::parse(&n.payload) {
                    shared.leases.cancel_job(id);
                }
            }
            Some(Received::Notification(n)) if n.topic == crate::changes::WATCH => {
                shared.client.hints.watched();
            }
            Some(Received::Notification(_)) => {}
            Some(Received::Missed) => everyone(),
            None => break,
        }
    }
}
