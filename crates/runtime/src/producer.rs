//! The producer: one per queue per node. It claims jobs in batches, keeps a
//! small local buffer, and starts each job when a slot is free.
//!
//! Slots are semaphore permits: a job holds one from start until its handler
//! returns, so no more than the queue's concurrency run at once. The claim
//! runs beside the jobs, not between them: while one batch runs, the next is
//! claimed. A claim asks for the free slots plus as many again for the
//! buffer, so under a backlog the next jobs are already local when slots
//! free up (the buffer never holds more than one batch, and never more than
//! the slots that were free when it was filled, so a node with slow jobs does
//! not hoard work other nodes could run). A buffered job that waited half of
//! its lease is handed back instead of started, so it can never run after its
//! lease might have expired.
//!
//! When the queue runs dry the producer waits for a wake-up — or, as a
//! fallback, for the next idle poll (2 s growing to 30 s, reset on work). A
//! wake-up that arrives while a claim is in flight is kept (`Notify` stores
//! one permit), so none is lost.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use capstan_core::{IdleBackoff, Job};
use capstan_store::{Claim, Finish, Outcome, Store, StoreResult};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::node::Shared;

pub(crate) struct Producer<S: Store> {
    pub(crate) shared: Arc<Shared<S>>,
    pub(crate) queue: String,
    pub(crate) concurrency: usize,
    pub(crate) wake: Arc<Notify>,
}

/// A claimed job waiting for a slot.
struct Buffered {
    job: Job,
    /// Start it no later than this, or hand it back.
    start_by: Instant,
}

type ClaimFuture = Pin<Box<dyn Future<Output = StoreResult<Vec<Job>>> + Send>>;

impl<S: Store> Producer<S> {
    pub(crate) async fn run(self, stop: CancellationToken) {
        let config = &self.shared.client.config;
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let batch = self.concurrency.min(config.claim_batch).max(1);
        let mut backoff =
            IdleBackoff::new(config.poll_initial, config.poll_max, config.poll_multiplier);
        let template = Claim {
            queue: self.queue.clone(),
            kinds: Some(self.shared.workers.kinds()),
            limit: 0,
            node: self.shared.node_id.clone(),
            default_timeout: config.default_timeout,
            lease_grace: config.lease_grace,
            now: None,
        };
        let mut buffer: VecDeque<Buffered> = VecDeque::new();
        let mut in_flight: Option<(ClaimFuture, usize, std::time::Instant)> = None;
        // Claim at start: jobs may be waiting already.
        let mut want_claim = true;
        let mut idle_until: Option<Instant> = None;
        loop {
            if self.start_buffered(&mut buffer, &slots) {
                // Jobs went back to the queue: look again when a slot frees.
                want_claim = true;
            }
            if want_claim && in_flight.is_none() {
                let free = slots.available_permits();
                let room = batch.saturating_sub(buffer.len()).min(free);
                let limit = (free + room).min(config.claim_batch);
                let enough = if buffer.is_empty() { 1 } else { batch / 2 };
                if limit >= enough.max(1) {
                    let mut p = template.clone();
                    p.limit = limit as u32;
                    p.now = self.shared.client.clock.pinned();
                    let store = self.shared.client.store.clone();
                    let fut: ClaimFuture = Box::pin(async move { store.claim(&p).await });
                    in_flight = Some((fut, limit, std::time::Instant::now()));
                    idle_until = None;
                }
            }
            let waiting_for_work = in_flight.is_none() && !want_claim;
            let expiry = buffer.iter().map(|b| b.start_by).min();
            if waiting_for_work && buffer.is_empty() && idle_until.is_none() {
                idle_until = Some(Instant::now() + backoff.next_wait());
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                res = async {
                    match in_flight.as_mut() {
                        Some((fut, _, _)) => fut.await,
                        None => std::future::pending().await,
                    }
                }, if in_flight.is_some() => {
                    let Some((_, limit, started)) = in_flight.take() else { continue };
                    match res {
                        Ok(jobs) => {
                            tracing::trace!(queue = %self.queue, limit, claimed = jobs.len(), micros = started.elapsed().as_micros() as u64, "claim");
                            // A full batch: more are waiting, claim again as soon as there is room.
                            want_claim = jobs.len() == limit;
                            if !jobs.is_empty() {
                                backoff.reset();
                            }
                            let now = Instant::now();
                            buffer.extend(jobs.into_iter().map(|job| {
                                let lease = self.lease_of(&job);
                                Buffered { job, start_by: now + lease / 2 }
                            }));
                        }
                        Err(e) => {
                            tracing::warn!(queue = %self.queue, error = %e, "claim failed; retrying in 1 s");
                            tokio::select! {
                                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                                () = stop.cancelled() => break,
                            }
                            want_claim = true;
                        }
                    }
                }
                // A slot freed: start a buffered job, or claim for it.
                permit = slots.clone().acquire_owned(), if !buffer.is_empty() || (want_claim && in_flight.is_none()) => {
                    match permit {
                        Ok(permit) => {
                            drop(permit); // start_buffered takes it again, with the job
                        }
                        Err(_) => break,
                    }
                }
                // A buffered job reached its start-by time: hand it back.
                () = sleep_until(expiry), if expiry.is_some() => {}
                () = self.wake.notified(), if waiting_for_work => want_claim = true,
                () = sleep_until(idle_until), if waiting_for_work && buffer.is_empty() => want_claim = true,
            }
        }
        self.hand_back(buffer, in_flight.map(|(fut, _, _)| fut))
            .await;
    }

    /// Start buffered jobs while slots are free; hand back those that waited
    /// too long (and say so).
    fn start_buffered(&self, buffer: &mut VecDeque<Buffered>, slots: &Arc<Semaphore>) -> bool {
        let now = Instant::now();
        let before = buffer.len();
        buffer.retain(|b| {
            if b.start_by > now {
                return true;
            }
            tracing::debug!(job_id = %b.job.id, "buffered job waited half its lease; handing it back");
            self.send_hand_back(b.job.clone());
            false
        });
        let handed_back = buffer.len() < before;
        while !buffer.is_empty() {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            if let Some(b) = buffer.pop_front() {
                self.shared.start(b.job, permit);
            }
        }
        handed_back
    }

    fn lease_of(&self, job: &Job) -> Duration {
        let config = &self.shared.client.config;
        job.timeout_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis)
            .unwrap_or(config.default_timeout)
            + config.lease_grace
    }

    fn send_hand_back(&self, job: Job) {
        let finish = Finish {
            id: job.id,
            attempt: job.attempt,
            outcome: Outcome::HandBack,
        };
        if self.shared.completer.try_send(finish).is_err() {
            tracing::warn!(job_id = %job.id, "could not hand back a buffered job; it will be rescued when its lease expires");
        }
    }

    /// Stopping: jobs claimed but not started go back to the queue, attempt
    /// given back; a claim still in flight is awaited so its jobs go back too.
    async fn hand_back(&self, buffer: VecDeque<Buffered>, in_flight: Option<ClaimFuture>) {
        let mut jobs: Vec<Job> = buffer.into_iter().map(|b| b.job).collect();
        if let Some(fut) = in_flight
            && let Ok(Ok(claimed)) = tokio::time::timeout(Duration::from_secs(10), fut).await
        {
            jobs.extend(claimed);
        }
        for job in jobs {
            let finish = Finish {
                id: job.id,
                attempt: job.attempt,
                outcome: Outcome::HandBack,
            };
            if self.shared.completer.send(finish).await.is_err() {
                break;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
