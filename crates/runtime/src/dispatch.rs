//! Routing notifications: "jobs in queue q" wakes q's producer, "jobs
//! anywhere" or a missed hint wakes every producer and the scheduler,
//! "cancel job j" cancels j's handler if this node runs it. The runtime owns
//! the [`Topic::JOBS`] and [`Topic::CONTROL`] payloads' meaning; the store
//! only carries them.

use std::collections::BTreeMap;
use std::sync::Arc;

use capstan_store::{ControlHint, JobsHint, Notifications, Received, Store, Topic};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::running::Shared;

/// The topics a node subscribes to.
pub(crate) const TOPICS: [Topic; 2] = [Topic::JOBS, Topic::CONTROL];

pub(crate) async fn run<S: Store>(
    mut notifications: Notifications,
    producers: BTreeMap<String, Arc<Notify>>,
    scheduler: Arc<Notify>,
    shared: Arc<Shared<S>>,
    stop: CancellationToken,
) {
    let everyone = || {
        for n in producers.values() {
            n.notify_one();
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
                            if let Some(p) = producers.get(q) {
                                p.notify_one();
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
            Some(Received::Notification(_)) => {}
            Some(Received::Missed) => everyone(),
            None => break,
        }
    }
}
