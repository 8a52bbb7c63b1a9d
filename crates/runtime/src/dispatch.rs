//! Routing wake-ups: "jobs in queue q" wakes q's producer, "anything changed"
//! wakes every producer and the scheduler, "cancel job j" cancels j's handler
//! if this node runs it.

use std::collections::BTreeMap;
use std::sync::Arc;

use capstan_store::{Store, Wakeup, Wakeups};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::node::Shared;

pub(crate) async fn run<S: Store>(
    mut wakeups: Wakeups,
    producers: BTreeMap<String, Arc<Notify>>,
    scheduler: Arc<Notify>,
    shared: Arc<Shared<S>>,
    stop: CancellationToken,
) {
    loop {
        let w = tokio::select! {
            w = wakeups.recv() => w,
            () = stop.cancelled() => break,
        };
        match w {
            Some(Wakeup::Queue(q)) => {
                if let Some(n) = producers.get(&q) {
                    n.notify_one();
                }
            }
            Some(Wakeup::All) => {
                for n in producers.values() {
                    n.notify_one();
                }
                scheduler.notify_one();
            }
            Some(Wakeup::Cancel(id)) => shared.leases.cancel_job(id),
            None => break,
        }
    }
}
