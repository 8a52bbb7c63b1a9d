//! Wake-ups: hints that work may be waiting, so idle workers start within
//! milliseconds instead of waiting for their next poll.
//!
//! A wake-up is only a hint over the durable jobs table: losing one costs
//! latency (the polling fallback finds the job), never a job. A receiver that
//! falls behind gets [`Wakeup::All`] instead of the hints it missed.

use capstan_core::JobId;
use tokio::sync::broadcast;

/// A hint sent to the workers of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    /// Jobs became available in this queue.
    Queue(String),
    /// Anything may have changed (a missed or coalesced hint): check every queue.
    All,
    /// A user asked to cancel this running job.
    Cancel(JobId),
}

/// The sending side, shared by everything in a process that produces hints.
#[derive(Debug, Clone)]
pub struct WakeupHub {
    tx: broadcast::Sender<Wakeup>,
}

impl WakeupHub {
    /// A hub whose receivers buffer up to 1,024 hints before they collapse to [`Wakeup::All`].
    pub fn new() -> Self {
        WakeupHub {
            tx: broadcast::channel(1024).0,
        }
    }

    /// Send a hint to every receiver (none listening is fine).
    pub fn send(&self, wakeup: Wakeup) {
        let _ = self.tx.send(wakeup);
    }

    /// A new receiver of every hint sent from now on.
    pub fn subscribe(&self) -> Wakeups {
        Wakeups {
            rx: self.tx.subscribe(),
        }
    }
}

impl Default for WakeupHub {
    fn default() -> Self {
        Self::new()
    }
}

/// The receiving side.
#[derive(Debug)]
pub struct Wakeups {
    rx: broadcast::Receiver<Wakeup>,
}

impl Wakeups {
    /// The next hint; `None` once the store is gone.
    pub async fn recv(&mut self) -> Option<Wakeup> {
        match self.rx.recv().await {
            Ok(w) => Some(w),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Wakeup::All),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
