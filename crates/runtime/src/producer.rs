//! The producer: one per queue per node. It claims as many jobs as it has
//! free slots (up to a batch) in one round trip, starts each one, and when
//! the queue runs dry waits for a wake-up — or, as a fallback, for the next
//! idle poll (2 s growing to 30 s, reset on work).
//!
//! Slots are semaphore permits: a job holds one from claim until its handler
//! returns, so the queue's concurrency is never exceeded. A wake-up that
//! arrives while a claim is in flight is kept (`Notify` stores one permit), so
//! none is lost between "the claim found nothing" and "start waiting".

use std::sync::Arc;

use capstan_core::IdleBackoff;
use capstan_store::{Claim, Store};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::node::Shared;

pub(crate) struct Producer<S: Store> {
    pub(crate) shared: Arc<Shared<S>>,
    pub(crate) queue: String,
    pub(crate) concurrency: usize,
    pub(crate) wake: Arc<Notify>,
}

impl<S: Store> Producer<S> {
    pub(crate) async fn run(self, stop: CancellationToken) {
        let config = &self.shared.client.config;
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let batch = self.concurrency.min(config.claim_batch).max(1);
        let mut backoff =
            IdleBackoff::new(config.poll_initial, config.poll_max, config.poll_multiplier);
        let mut claim = Claim {
            queue: self.queue.clone(),
            kinds: Some(self.shared.workers.kinds()),
            limit: 0,
            node: self.shared.node_id.clone(),
            default_timeout: config.default_timeout,
            lease_grace: config.lease_grace,
            now: None,
        };
        let mut backlog = false;
        loop {
            let mut permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                () = stop.cancelled() => break,
            };
            if backlog {
                // More jobs are waiting: let running ones finish for a moment
                // so the next claim is a full batch, not a trickle.
                for _ in 0..4 {
                    if slots.available_permits() + 1 >= batch / 2 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
            let more = slots.available_permits().min(batch - 1);
            if more > 0
                && let Ok(extra) = slots.clone().try_acquire_many_owned(more as u32)
            {
                permit.merge(extra);
            }
            let want = permit.num_permits();
            claim.limit = want as u32;
            claim.now = self.shared.client.clock.pinned();
            let jobs = match self.shared.client.store.claim(&claim).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    drop(permit);
                    tracing::warn!(queue = %self.queue, error = %e, "claim failed; retrying in 1 s");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        () = stop.cancelled() => break,
                    }
                    continue;
                }
            };
            backlog = jobs.len() == want;
            if !jobs.is_empty() {
                backoff.reset();
            }
            for job in jobs {
                let Some(one) = permit.split(1) else { break };
                self.shared.start(job, one);
            }
            drop(permit);
            if !backlog {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(backoff.next_wait()) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    }
}
