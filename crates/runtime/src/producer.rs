//! The producer: one per queue per node. It claims jobs in batches, keeps a
//! local buffer, and starts each job when a slot is free.
//!
//! Slots are semaphore permits: a job holds one from start until its handler
//! returns, so no more than the queue's concurrency run at once. The claim
//! runs beside the jobs, not between them: while one batch runs, the next is
//! claimed. A claim asks for the free slots plus what the handlers could
//! start within a short horizon at their measured capacity (see `prefetch`:
//! independent of the concurrency), so under a backlog the next jobs are
//! already local when slots free up, and slow jobs are not hoarded.
//!
//! A job's lease is `timeout + lease_grace` from its claim, but its handler
//! may run `timeout` from its start. So a job that waited in the buffer
//! longer than it safely may — half of what `lease_grace` leaves after
//! `cancel_grace` — has its lease extended before it starts, in one batched
//! write for all the jobs starting at that moment; a job whose extension the
//! database fences (it was rescued meanwhile) is dropped, never started.
//! Every job thus starts with a lease that covers its whole timeout, and its
//! handler is bounded by that lease (see `context`). Waits are measured on
//! the node's clock, the one its leases are reckoned in.
//!
//! A buffered job that waited half its lease is handed back instead (so a
//! node with slow jobs does not hoard work other nodes could run), and one a
//! user cancelled while it waited ends `cancelled` without running.
//!
//! When the queue runs dry the producer waits for a wake-up — or, as a
//! fallback, for the next idle poll (2 s growing to 30 s, reset on work). A
//! wake-up that arrives while a claim is in flight is kept (`Notify` stores
//! one permit), so none is lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use capstan_core::{ErrorClass, IdleBackoff, Job, Lease, Timestamp};
use capstan_store::jobs::{Claim, ClaimKey, ErrorRecord, Extension, Finish, Outcome};
use capstan_store::{Store, StoreResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::LeaseTerms;
use crate::dispatch::Wake;
use crate::executor::Executor;
use crate::leases::StopReason;
use crate::prefetch::Prefetch;
use crate::running::{Shared, Start};
use crate::{Config, QueueConfig};

/// What a producer needs of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct ProducerConfig {
    /// The queue it claims from.
    pub(crate) queue: String,
    /// Its jobs run at once on this node.
    pub(crate) concurrency: usize,
    /// Most jobs per claim.
    pub(crate) claim_batch: usize,
    pub(crate) poll_initial: Duration,
    pub(crate) poll_max: Duration,
    pub(crate) poll_multiplier: f64,
    pub(crate) lease: LeaseTerms,
    /// A buffered job that waited longer starts only with a fresh lease.
    pub(crate) fresh_start: Duration,
    /// Jobs held beyond the free slots at least.
    pub(crate) prefetch_min: usize,
}

impl ProducerConfig {
    pub(crate) fn of(config: &Config, queue: &QueueConfig) -> Self {
        ProducerConfig {
            queue: queue.name.clone(),
            concurrency: queue.concurrency,
            claim_batch: config.claim_batch,
            poll_initial: config.poll_initial,
            poll_max: config.poll_max,
            poll_multiplier: config.poll_multiplier,
            lease: config.lease_terms(),
            fresh_start: config.fresh_start(),
            prefetch_min: config.prefetch_min,
        }
    }
}

/// Claims the jobs of one queue for a node and starts them on its executor.
pub(crate) struct Producer<S: Store> {
    /// The node's shared state: its leases, handlers and completer.
    shared: Arc<Shared<S>>,
    /// Runs the jobs this producer starts.
    executor: Executor<S>,
    config: ProducerConfig,
    /// Notified when jobs may have become available in the queue.
    wake: Arc<Wake>,
    /// The queue's name (the config's, kept at hand for logs).
    queue: String,
}

/// A claimed job waiting for a slot.
struct Buffered {
    job: Job,
    lease: Lease,
    cancel: CancellationToken,
    /// When its claim was sent, on the node's clock.
    claimed_at: Timestamp,
    /// Until when, at the latest, the database holds its lease for us.
    lease_until: Instant,
}

/// How often the whole buffer is looked through for jobs to hand back or
/// end, while its slots are all taken.
const SWEEP: Duration = Duration::from_millis(250);

/// A producer resumes its claims after its last full one for at most this
/// long before it claims from the head of the queue again.
const RESUME_FOR: Duration = Duration::from_secs(1);

/// A claim in flight runs in a task of its own. Were it a future of the
/// producer's, it would make progress only while the producer polls it, and
/// the producer awaits other writes meanwhile (a lease extension before a
/// start, a finish handed to the completer): on SQLite, whose process has
/// one writer connection, a claim that holds it unpolled and a write that
/// waits for it stalled the node until the write's 30 s bound.
type ClaimTask = tokio::task::JoinHandle<StoreResult<Vec<Job>>>;

/// A claim in flight: its task, its limit, and when it was sent.
struct InFlight {
    task: ClaimTask,
    limit: usize,
    sent: Instant,
    sent_at: Timestamp,
}

impl<S: Store> Producer<S> {
    pub(crate) fn new(
        shared: Arc<Shared<S>>,
        executor: Executor<S>,
        config: ProducerConfig,
        wake: Arc<Wake>,
    ) -> Self {
        Producer {
            queue: config.queue.clone(),
            shared,
            executor,
            config,
            wake,
        }
    }

    /// Claim and start jobs until `stop` fires, then hand back what was
    /// claimed and not started.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let config = &self.config;
        let slots = Arc::new(Semaphore::new(config.concurrency));
        let mut prefetch = Prefetch::new(
            config.concurrency,
            config.prefetch_min,
            config.claim_batch,
            config.fresh_start / 2,
        );
        let mut backoff =
            IdleBackoff::new(config.poll_initial, config.poll_max, config.poll_multiplier);
        let template = Claim {
            queue: self.queue.clone(),
            kinds: self.shared.workers.claim_kinds(&self.queue),
            limit: 0,
            node: self.shared.node_id.clone(),
            default_timeout: config.lease.default_timeout,
            lease_grace: config.lease.lease_grace,
            now: None,
            after: None,
        };
        let mut buffer: VecDeque<Buffered> = VecDeque::new();
        let mut in_flight: Option<InFlight> = None;
        // Claim at start: jobs may be waiting already.
        let mut want_claim = true;
        let mut idle_until: Option<Instant> = None;
        // A lease extension failed: do not try again before this.
        let mut extend_after: Option<Instant> = None;
        // Every SWEEP the whole buffer is looked through (see start_buffered).
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep_due = false;
        // Where the next claim resumes: after the last job of the last full
        // claim, until a claim comes back short, a job goes back, or the
        // queue rings (jobs that may sort before it).
        let mut resume: Option<ClaimKey> = None;
        // When a claim last started from the head of the queue.
        let mut from_head = Instant::now();
        loop {
            if stop.is_cancelled() {
                break;
            }
            if extend_after.is_some_and(|t| t <= Instant::now()) {
                extend_after = None;
            }
            let handed_back = self
                .start_buffered(&mut buffer, &slots, &prefetch, sweep_due, &mut extend_after)
                .await;
            sweep_due = false;
            if handed_back {
                // Jobs went back to the queue: look again when a slot frees.
                want_claim = true;
                resume = None;
            }
            if want_claim && in_flight.is_none() {
                // Free slots now, plus what the handlers could start within
                // the horizon (see `prefetch`), minus what is here already.
                let free = slots.available_permits();
                let ahead = prefetch.ahead();
                let limit = (free + ahead)
                    .saturating_sub(buffer.len())
                    .min(config.claim_batch);
                // With jobs at hand, claim only a worthwhile batch.
                let enough = if buffer.is_empty() {
                    1
                } else {
                    (ahead / 2).max(1)
                };
                if limit >= enough.max(1) {
                    // At least every RESUME_FOR from the head again: a job
                    // skipped while another claim held it, whose claim then
                    // rolled back, is available again with no wake-up.
                    if self.wake.take() || from_head.elapsed() >= RESUME_FOR {
                        resume = None;
                    }
                    if resume.is_none() {
                        from_head = Instant::now();
                    }
                    let mut p = template.clone();
                    p.limit = limit as u32;
                    p.now = self.shared.client.clock.pinned();
                    p.after = resume;
                    let store = self.shared.client.store.clone();
                    in_flight = Some(InFlight {
                        // Bounded: a claim that hangs must not stop the queue.
                        task: tokio::spawn(async move {
                            crate::maintenance::bounded("claim", store.claim(&p)).await
                        }),
                        limit,
                        sent: Instant::now(),
                        sent_at: self.shared.client.clock.now(),
                    });
                    idle_until = None;
                }
            }
            let waiting_for_work = in_flight.is_none() && !want_claim;
            let retry_extend = extend_after.filter(|_| !buffer.is_empty());
            if waiting_for_work && buffer.is_empty() && idle_until.is_none() {
                idle_until = Some(Instant::now() + backoff.next_wait());
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                res = async {
                    match in_flight.as_mut() {
                        Some(f) => (&mut f.task).await.unwrap_or_else(|e| Err(claim_panicked(&e))),
                        None => std::future::pending().await,
                    }
                }, if in_flight.is_some() => {
                    let Some(f) = in_flight.take() else { continue };
                    match res {
                        Ok(jobs) => {
                            prefetch.claimed(f.sent.elapsed());
                            self.shared.client.hints.send(
                                &self.shared.client.store,
                                jobs.iter().map(|j| j.id),
                                false,
                            );
                            tracing::trace!(queue = %self.queue, limit = f.limit, claimed = jobs.len(), micros = f.sent.elapsed().as_micros() as u64, capacity = prefetch.capacity(), "claim");
                            // A full batch: more are waiting, claim again as soon as
                            // there is room, from after its last job (claim order).
                            want_claim = jobs.len() == f.limit;
                            resume = if want_claim { jobs.last().map(ClaimKey::of) } else { None };
                            if !jobs.is_empty() {
                                backoff.reset();
                            }
                            for job in jobs {
                                if let Some(b) = self.hold(job, f.sent, f.sent_at) {
                                    buffer.push_back(b);
                                }
                            }
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
                permit = slots.clone().acquire_owned(), if (!buffer.is_empty() && retry_extend.is_none()) || (want_claim && in_flight.is_none()) => {
                    match permit {
                        Ok(permit) => {
                            drop(permit); // start_buffered takes it again, with the job
                        }
                        Err(_) => break,
                    }
                }
                () = sleep_until(retry_extend), if retry_extend.is_some() => {}
                // A buffered job may reach its hand-back time, or be
                // cancelled, while every slot is taken: look again soon.
                _ = sweep.tick(), if !buffer.is_empty() => sweep_due = true,
                () = self.wake.rung(), if waiting_for_work => want_claim = true,
                () = sleep_until(idle_until), if waiting_for_work && buffer.is_empty() => want_claim = true,
            }
        }
        self.hand_back(buffer, in_flight).await;
    }

    /// Track a claimed job in the node's leases and wrap it for the buffer.
    fn hold(&self, job: Job, sent: Instant, sent_at: Timestamp) -> Option<Buffered> {
        let Some(lease) = job.lease() else {
            tracing::error!(job_id = %job.id, "a claimed job came back without a lease token; it will be rescued when its lease expires");
            return None;
        };
        let cancel = self.shared.leases.hold(lease.clone());
        Some(Buffered {
            lease_until: sent + self.lease_of(&job),
            job,
            lease,
            cancel,
            claimed_at: sent_at,
        })
    }

    /// Start buffered jobs while slots are free: the ones that waited too
    /// long for their lease get it extended first (one write for all), the
    /// cancelled ones end cancelled, the ones that waited half their lease go
    /// back to the queue. Only as far into the buffer as there are free
    /// slots, so a start costs the same however full the buffer is; with
    /// `sweep`, through all of it, so that a job deep in a buffer whose
    /// slots are all taken still goes back or ends in time. Returns true
    /// when a job went back to the queue.
    async fn start_buffered(
        &self,
        buffer: &mut VecDeque<Buffered>,
        slots: &Arc<Semaphore>,
        prefetch: &Prefetch,
        sweep: bool,
        extend_after: &mut Option<Instant>,
    ) -> bool {
        let now = self.shared.client.clock.now();
        let fresh = self.config.fresh_start;
        let mut handed_back = false;
        let mut stale: Vec<(Buffered, OwnedSemaphorePermit)> = Vec::new();
        // Jobs passed over, in buffer order: they go back in front.
        let mut kept = VecDeque::new();
        while let Some(b) = buffer.pop_front() {
            if !sweep && slots.available_permits() == 0 {
                buffer.push_front(b);
                break;
            }
            let waited = (now - b.claimed_at).to_std().unwrap_or_default();
            if b.cancel.is_cancelled() {
                self.end_stopped(b).await;
                continue;
            }
            if waited >= self.lease_of(&b.job) / 2 {
                tracing::debug!(lease = %b.lease, ?waited, "buffered job waited half its lease; handing it back");
                self.finish_unstarted(b, Outcome::HandBack).await;
                handed_back = true;
                continue;
            }
            let needs_lease = waited > fresh;
            if needs_lease && extend_after.is_some() {
                kept.push_back(b);
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                kept.push_back(b);
                continue;
            };
            if needs_lease {
                stale.push((b, permit));
            } else {
                self.start(b, permit, prefetch);
            }
        }
        while let Some(b) = kept.pop_back() {
            buffer.push_front(b);
        }
        if !stale.is_empty() {
            self.start_with_fresh_leases(stale, buffer, prefetch, extend_after)
                .await;
        }
        handed_back
    }

    /// Extend the leases of `stale` jobs in one write, then start them; the
    /// fenced ones are dropped, and on failure they go back to the buffer.
    async fn start_with_fresh_leases(
        &self,
        stale: Vec<(Buffered, OwnedSemaphorePermit)>,
        buffer: &mut VecDeque<Buffered>,
        prefetch: &Prefetch,
        extend_after: &mut Option<Instant>,
    ) {
        let sent = Instant::now();
        let leases = stale
            .iter()
            .map(|(b, _)| Extension {
                lease: b.lease.clone(),
                duration: self.lease_of(&b.job),
                progress: None,
            })
            .collect();
        match self.shared.keeper.extend(leases).await {
            Ok(report) => {
                for (mut b, permit) in stale {
                    if report.accepted.contains(&b.lease) {
                        b.lease_until = sent + self.lease_of(&b.job);
                        self.start(b, permit, prefetch);
                    } else {
                        tracing::warn!(lease = %b.lease, "a buffered job was taken from this node before it could start; dropped");
                        self.shared.leases.release(&b.lease);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(queue = %self.queue, error = %e, "could not extend the leases of buffered jobs; they wait (not started without a lease)");
                *extend_after = Some(Instant::now() + Duration::from_millis(500));
                for (b, _permit) in stale.into_iter().rev() {
                    buffer.push_front(b);
                }
            }
        }
    }

    /// Start `b` on `permit`; its slot counts its hold time from now
    /// (see `prefetch`), so a wait for a lease or a job dropped unstarted
    /// is no hold time.
    fn start(&self, b: Buffered, permit: OwnedSemaphorePermit, prefetch: &Prefetch) {
        self.executor.start(
            Start {
                job: b.job,
                lease: b.lease,
                cancel: b.cancel,
                lease_until: b.lease_until,
            },
            prefetch.slot(permit),
        );
    }

    /// A buffered job ends here without running: finished, then released.
    /// Sent with backpressure, never dropped.
    async fn finish_unstarted(&self, b: Buffered, outcome: Outcome) {
        let finish = Finish {
            lease: b.lease.clone(),
            outcome,
        };
        if self.shared.completer.send(finish).await.is_err() {
            tracing::warn!(job_id = %b.job.id, "completer stopped; this buffered job will be rescued when its lease expires");
        }
        self.shared.leases.release(&b.lease);
    }

    /// A buffered job told to stop before it started ends as its reason says.
    async fn end_stopped(&self, b: Buffered) {
        match self.shared.leases.reason(&b.lease) {
            Some(StopReason::TakenAway) => self.shared.leases.release(&b.lease),
            Some(StopReason::Replaced) => self.finish_unstarted(b, Outcome::HandBack).await,
            Some(StopReason::Cancelled) | None => self.finish_unstarted(b, cancelled()).await,
        }
    }

    fn lease_of(&self, job: &Job) -> Duration {
        self.config.lease.lease(job)
    }

    /// Stopping: jobs claimed but not started go back to the queue, attempt
    /// given back; a claim still in flight is awaited so its jobs go back too.
    async fn hand_back(&self, buffer: VecDeque<Buffered>, in_flight: Option<InFlight>) {
        let mut jobs: Vec<Buffered> = buffer.into_iter().collect();
        if let Some(mut f) = in_flight
            && let Some(Ok(Ok(claimed))) =
                match tokio::time::timeout(Duration::from_secs(10), &mut f.task).await {
                    Ok(done) => Some(done),
                    Err(_) => {
                        // (Its jobs, if it claims any after all, are rescued.)
                        f.task.abort();
                        None
                    }
                }
        {
            jobs.extend(
                claimed
                    .into_iter()
                    .filter_map(|job| self.hold(job, f.sent, f.sent_at)),
            );
        }
        for b in jobs {
            if b.cancel.is_cancelled() {
                self.end_stopped(b).await;
            } else {
                self.finish_unstarted(b, Outcome::HandBack).await;
            }
        }
    }
}

fn cancelled() -> Outcome {
    Outcome::Cancel {
        error: ErrorRecord {
            class: ErrorClass::Cancelled,
            message: "cancelled by a user before it started".to_owned(),
        },
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A claim task that panicked, as a store error the producer retries.
fn claim_panicked(e: &tokio::task::JoinError) -> capstan_store::StoreError {
    capstan_store::StoreError::Unavailable {
        operation: "claim",
        source: format!("the claim task ended abnormally: {e}").into(),
    }
}
