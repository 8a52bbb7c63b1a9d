//! The completer: writes finished attempts in batches. Executors hand it
//! finishes through a bounded channel; it writes whatever has gathered in one
//! round trip, so the batch grows by itself under load (group commit) and
//! stays a single row when idle, with no timer adding latency.
//!
//! Nothing is dropped on a blip. While the node runs, a batch the database
//! could not take (unreachable, failing over, busy) is retried until it is
//! written: executors wait on the full channel meanwhile, which is the
//! backpressure wanted (slots stay taken, no new work starts). At shutdown
//! the retries are bounded by `final_flush`, and what could not be written is
//! logged by lease (those jobs are rescued later).
//!
//! One bad finish cannot take its batch down. When the database refuses a
//! batch (rather than being unreachable), the batch is split in halves and
//! each is written on its own, down to single rows; a single finish it still
//! refuses is written as a failure of its job that quotes the database's
//! reason, so the other jobs are finished and the bad one does not come back.
//!
//! A finish the database reports as fenced is logged and dropped: that job
//! belongs to someone else now.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::{Clock, ErrorClass};
use capstan_store::{ErrorRecord, Finish, FinishMany, Outcome, Store, StoreError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// First pause after a failed write; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between two tries of a write.
const MAX_PAUSE: Duration = Duration::from_millis(500);

pub(crate) struct Completer<S> {
    pub(crate) store: S,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rx: mpsc::Receiver<Finish>,
    pub(crate) batch: usize,
    /// At shutdown, how long a batch is retried before it is given up.
    pub(crate) final_flush: Duration,
    pub(crate) crash: CancellationToken,
}

/// What became of one write.
enum Written {
    Done,
    /// The database refused these finishes (not a transient failure).
    Refused(StoreError),
    /// Stopping, and the database stayed unavailable.
    GaveUp(StoreError),
}

impl<S: Store> Completer<S> {
    /// Write finishes until `stop`, then drain what is left and return.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let mut buf = Vec::with_capacity(self.batch);
        let mut give_up_at = None;
        loop {
            let first = tokio::select! {
                f = self.rx.recv() => f,
                () = stop.cancelled() => None,
            };
            let Some(first) = first else { break };
            buf.push(first);
            self.gather(&mut buf);
            self.flush(std::mem::take(&mut buf), &stop, &mut give_up_at)
                .await;
        }
        if self.crash.is_cancelled() {
            return;
        }
        // Stopping: every executor has finished; write what they left.
        loop {
            self.gather(&mut buf);
            if buf.is_empty() {
                break;
            }
            self.flush(std::mem::take(&mut buf), &stop, &mut give_up_at)
                .await;
        }
    }

    fn gather(&mut self, buf: &mut Vec<Finish>) {
        while buf.len() < self.batch {
            match self.rx.try_recv() {
                Ok(f) => buf.push(f),
                Err(_) => break,
            }
        }
    }

    /// Write `finishes`, splitting batches the database refuses.
    async fn flush(
        &self,
        finishes: Vec<Finish>,
        stop: &CancellationToken,
        give_up_at: &mut Option<Instant>,
    ) {
        let mut todo = vec![finishes];
        while let Some(batch) = todo.pop() {
            match self.write(&batch, stop, give_up_at).await {
                Written::Done => {}
                Written::Refused(e) if batch.len() > 1 => {
                    tracing::warn!(error = %e, finishes = batch.len(), "the database refused a batch of finishes; writing its halves apart");
                    let mut first = batch;
                    let second = first.split_off(first.len() / 2);
                    todo.push(second);
                    todo.push(first);
                }
                Written::Refused(e) => {
                    let Some(f) = batch.into_iter().next() else {
                        continue;
                    };
                    tracing::error!(lease = %f.lease, error = %e, "the database refused this job's finish; failing the job with the reason");
                    let failed = vec![Finish {
                        lease: f.lease.clone(),
                        outcome: Outcome::Fail {
                            error: ErrorRecord {
                                class: ErrorClass::Permanent,
                                message: format!(
                                    "the database refused to record how this attempt ended ({e}); the job was failed so that it cannot fail its batch again"
                                ),
                            },
                        },
                    }];
                    match self.write(&failed, stop, give_up_at).await {
                        Written::Done => {}
                        Written::Refused(e) | Written::GaveUp(e) => {
                            tracing::error!(lease = %f.lease, error = %e, "could not record the failure either; the job will be rescued when its lease expires");
                        }
                    }
                }
                Written::GaveUp(e) => {
                    let leases: Vec<String> = batch.iter().map(|f| f.lease.to_string()).collect();
                    tracing::error!(error = %e, unwritten = ?leases, "stopping with finishes the database could not take; those jobs will be rescued or reclaimed and run again");
                }
            }
        }
    }

    /// One batch: retried while the database is unavailable — without end
    /// while the node runs, until `give_up_at` once it stops.
    async fn write(
        &self,
        finishes: &[Finish],
        stop: &CancellationToken,
        give_up_at: &mut Option<Instant>,
    ) -> Written {
        let started = std::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut failures = 0u32;
        loop {
            let p = FinishMany {
                finishes: finishes.to_vec(),
                now: self.clock.pinned(),
            };
            let e = match self.store.finish_many(&p).await {
                Ok(report) => {
                    tracing::trace!(
                        finishes = finishes.len(),
                        micros = started.elapsed().as_micros() as u64,
                        "finish batch written"
                    );
                    if failures > 0 {
                        tracing::info!(
                            finishes = finishes.len(),
                            tries = failures + 1,
                            "finishes written after the database came back"
                        );
                    }
                    for lease in &report.fenced {
                        tracing::warn!(%lease, "finish rejected: this node no longer holds the job under this lease (it was rescued); the result is discarded");
                    }
                    return Written::Done;
                }
                Err(e) if e.is_transient() => e,
                Err(e) => return Written::Refused(e),
            };
            if self.crash.is_cancelled() {
                return Written::GaveUp(e);
            }
            if stop.is_cancelled() {
                let at = *give_up_at.get_or_insert_with(|| Instant::now() + self.final_flush);
                if Instant::now() >= at {
                    return Written::GaveUp(e);
                }
            }
            failures += 1;
            if failures == 1 {
                tracing::warn!(error = %e, finishes = finishes.len(), "writing finishes failed; retrying until the database answers");
            } else {
                tracing::debug!(error = %e, failures, "writing finishes failed again");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}
