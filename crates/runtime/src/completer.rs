//! The completer: writes finished attempts in batches. Executors hand it
//! finishes through a channel; it writes whatever has gathered in one round
//! trip, so the batch grows by itself under load (group commit) and stays a
//! single row when idle, with no timer adding latency.
//!
//! A finish the database refuses as fenced is logged and dropped: that job
//! belongs to someone else now. A finish that cannot be written after
//! retries is dropped too, loudly: its job's lease expires and it is rescued
//! (at-least-once, never lost).

use std::sync::Arc;
use std::time::Duration;

use capstan_core::{Clock, NodeId};
use capstan_store::{Finish, FinishMany, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WRITE_ATTEMPTS: u32 = 6;

pub(crate) struct Completer<S> {
    pub(crate) store: S,
    pub(crate) node: NodeId,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rx: mpsc::Receiver<Finish>,
    pub(crate) batch: usize,
    pub(crate) crash: CancellationToken,
}

impl<S: Store> Completer<S> {
    /// Write finishes until `stop`, then drain what is left and return.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let mut buf = Vec::with_capacity(self.batch);
        loop {
            let first = tokio::select! {
                f = self.rx.recv() => f,
                () = stop.cancelled() => None,
            };
            let Some(first) = first else { break };
            buf.push(first);
            self.gather(&mut buf);
            self.flush(&mut buf).await;
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
            self.flush(&mut buf).await;
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

    async fn flush(&self, buf: &mut Vec<Finish>) {
        let p = FinishMany {
            node: self.node.clone(),
            finishes: std::mem::take(buf),
            now: self.clock.pinned(),
        };
        let mut pause = Duration::from_millis(50);
        let started = std::time::Instant::now();
        for attempt in 1..=WRITE_ATTEMPTS {
            match self.store.finish_many(&p).await {
                Ok(report) => {
                    tracing::trace!(
                        finishes = p.finishes.len(),
                        micros = started.elapsed().as_micros() as u64,
                        "finish batch written"
                    );
                    for id in &report.fenced {
                        tracing::warn!(job_id = %id, node = %self.node, "finish rejected: this node no longer holds the job (it was rescued); the result is discarded");
                    }
                    return;
                }
                Err(e) if attempt < WRITE_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "writing {} finishes failed; retrying", p.finishes.len());
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::error!(error = %e, "giving up writing {} finishes; their jobs will be rescued when their leases expire", p.finishes.len());
                }
            }
        }
    }
}
