//! The completer: writes finished attempts in batches. Executors hand it
//! finishes through a bounded channel; it writes whatever has gathered in one
//! round trip, so the batch grows by itself under load (group commit) and
//! stays a single row when idle, with no timer adding latency.
//!
//! Nothing is dropped on a blip. While the node runs, a batch the database
//! could not take (unreachable, failing over, busy, or any error that is not
//! a refusal of the data itself) is retried until it is written; a write
//! that does not answer within [`WRITE_TIMEOUT`] counts as failed. Executors
//! wait on the full channel meanwhile, holding their slots: the backpressure
//! wanted (no new work starts). Once the node starts shutting down, the
//! retries are bounded by `final_flush`, and what could not be written is
//! logged by lease (those jobs are rescued later).
//!
//! One bad finish cannot take its batch down. When the database refuses the
//! data of a batch (`StoreError::Refused`: a value out of range, text it
//! cannot store), the batch is split in halves and each is written on its
//! own, down to single rows; a single finish it still refuses is written as a
//! failure of its job that quotes the database's reason, so the other jobs are
//! finished and the bad one does not come back.
//!
//! A finish the database reports as fenced is logged and dropped: that job
//! belongs to someone else now.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::{Clock, ErrorClass};
use capstan_store::jobs::{ErrorRecord, Finish, FinishMany, Outcome};
use capstan_store::{Store, StoreError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// First pause after a failed write; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(20);
/// Longest pause between two tries of a write.
const MAX_PAUSE: Duration = Duration::from_millis(250);
/// A write that has not answered after this long is given up and tried again.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Completer<S> {
    pub(crate) store: S,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rx: mpsc::Receiver<Finish>,
    pub(crate) batch: usize,
    /// At shutdown, how long a batch is retried before it is given up.
    pub(crate) final_flush: Duration,
    /// Fired when the node starts shutting down: retries become bounded.
    pub(crate) stopping: CancellationToken,
    pub(crate) crash: CancellationToken,
    /// Say which jobs were finished, to live views.
    pub(crate) hints: Arc<crate::changes::Hints>,
}

/// What became of one write.
enum Written {
    Done,
    /// The database refused the data of these finishes.
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
            self.flush(std::mem::take(&mut buf), &mut give_up_at).await;
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
            self.flush(std::mem::take(&mut buf), &mut give_up_at).await;
        }
    }

    fn gather(&mut self, buf: &mut Vec<Finish>) {
        while buf.len() < self.batch {
            match self.rx.try_recv() {
                Ok(f) => buf.push(f),
                Err(_) => break,
            }
        }
        // One finish per lease and statement: two rows for one job in one
        // UPDATE … FROM would apply one of them at random. The first sent
        // is the one that counts (a later one, a hand-back of a lease the
        // heartbeat thought lost, would be fenced anyway).
        let mut seen = std::collections::HashSet::with_capacity(buf.len());
        let again: Vec<usize> = buf
            .iter()
            .enumerate()
            .filter(|(_, f)| !seen.insert((f.lease.job_id, f.lease.token.as_str())))
            .map(|(i, _)| i)
            .collect();
        for i in again.into_iter().rev() {
            let f = buf.remove(i);
            tracing::debug!(lease = %f.lease, "a second finish of one lease in one batch: dropped");
        }
    }

    /// Write `finishes`, splitting batches the database refuses.
    async fn flush(&self, finishes: Vec<Finish>, give_up_at: &mut Option<Instant>) {
        let mut todo = vec![finishes];
        while let Some(batch) = todo.pop() {
            let (batch, written) = self.write(batch, give_up_at).await;
            match written {
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
                    match self.write(failed, give_up_at).await.1 {
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

    /// One batch: retried until it is written or refused — without end while
    /// the node runs, until `give_up_at` once it shuts down. Gives the
    /// batch back with what became of it.
    async fn write(
        &self,
        finishes: Vec<Finish>,
        give_up_at: &mut Option<Instant>,
    ) -> (Vec<Finish>, Written) {
        let started = std::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut failures = 0u32;
        let mut p = FinishMany {
            finishes,
            now: None,
        };
        loop {
            p.now = self.clock.pinned();
            let written = tokio::time::timeout(WRITE_TIMEOUT, self.store.finish_many(&p))
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Unavailable {
                        operation: "finish_many",
                        source: format!("no answer within {WRITE_TIMEOUT:?}").into(),
                    })
                });
            let e = match written {
                Ok(report) => {
                    tracing::trace!(
                        finishes = p.finishes.len(),
                        micros = started.elapsed().as_micros() as u64,
                        "finish batch written"
                    );
                    if failures > 0 {
                        tracing::info!(
                            finishes = p.finishes.len(),
                            tries = failures + 1,
                            "finishes written after the database came back"
                        );
                    }
                    self.hints
                        .send(&self.store, report.accepted.iter().map(|l| l.job_id), false);
                    for lease in &report.fenced {
                        tracing::warn!(%lease, "finish rejected: the job is no longer running under this lease (rescued or finished elsewhere, or this very finish was already written); nothing changed");
                    }
                    return (p.finishes, Written::Done);
                }
                Err(e @ StoreError::Refused { .. }) => return (p.finishes, Written::Refused(e)),
                Err(e) => e,
            };
            if self.crash.is_cancelled() {
                return (p.finishes, Written::GaveUp(e));
            }
            if self.stopping.is_cancelled() {
                let at = *give_up_at.get_or_insert_with(|| Instant::now() + self.final_flush);
                if Instant::now() >= at {
                    return (p.finishes, Written::GaveUp(e));
                }
            }
            failures += 1;
            if failures == 1 {
                tracing::warn!(error = %e, finishes = p.finishes.len(), "writing finishes failed; retrying until the database answers");
            } else {
                tracing::debug!(error = %e, failures, "writing finishes failed again");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}
