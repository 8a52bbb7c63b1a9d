//! Group commit for single enqueues: concurrent [`crate::Client::enqueue`]
//! calls of one process share a round trip (and, on PostgreSQL, a NOTIFY),
//! the way the completer groups finishes. A caller that finds no other
//! enqueue under way inserts its job itself, in its own task (a lone caller
//! pays no hand-off); callers that arrive while one is in flight go to the
//! batcher task, which sends whatever has gathered as one batch.
//!
//! Each caller still gets its own answer: a bad job is refused before it is
//! queued, and if a batch fails as a whole, each of its jobs is tried again
//! alone, so one caller's error is never another's. A caller that stops
//! waiting does not withdraw its job (as with a single insert whose reply
//! was lost, the job may exist).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use capstan_core::{Clock, NewJob};
use capstan_store::jobs::{InsertMany, Inserted};
use capstan_store::{Store, StoreResult};
use tokio::sync::{mpsc, oneshot};

use crate::Config;

/// Most jobs one grouped round trip carries.
const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<StoreResult<Inserted>>;

/// The shared queue of single enqueues, started on first use.
pub(crate) struct Enqueuer {
    tx: OnceLock<mpsc::UnboundedSender<(NewJob, Reply)>>,
    /// Enqueues under way (direct or queued).
    busy: AtomicUsize,
}

/// Counts an enqueue under way until dropped (also when its caller stops
/// waiting).
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Enqueuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enqueuer")
    }
}

impl Enqueuer {
    pub(crate) fn new() -> Self {
        Enqueuer {
            tx: OnceLock::new(),
            busy: AtomicUsize::new(0),
        }
    }

    /// Insert `job` (already validated, its attempts resolved), grouped
    /// with whatever other callers enqueue meanwhile.
    pub(crate) async fn insert<S: Store>(
        &self,
        store: &S,
        config: &Arc<Config>,
        clock: &Arc<dyn Clock>,
        job: NewJob,
    ) -> StoreResult<Inserted> {
        let first = self.busy.fetch_add(1, Ordering::AcqRel) == 0;
        let _busy = Busy(&self.busy);
        if first {
            // Nobody else is enqueueing: no one to group with.
            return alone(store, config, clock, job).await;
        }
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(store.clone(), config.clone(), clock.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        match tx.send((job, reply)) {
            Ok(()) => match answer.await {
                Ok(result) => result,
                // The batcher's runtime is gone (a test runtime ended).
                Err(_) => Err(gone()),
            },
            Err(mpsc::error::SendError((job, _))) => alone(store, config, clock, job).await,
        }
    }
}

fn gone() -> capstan_store::StoreError {
    capstan_store::StoreError::Unavailable {
        operation: "insert_many",
        source: "the enqueue batcher stopped with its runtime; the job may or may not exist".into(),
    }
}

async fn alone<S: Store>(
    store: &S,
    config: &Config,
    clock: &Arc<dyn Clock>,
    job: NewJob,
) -> StoreResult<Inserted> {
    let out = store
        .insert_many(&InsertMany {
            jobs: vec![job],
            default_max_attempts: config.retry.default.max_attempts,
            now: clock.pinned(),
        })
        .await?;
    one(out)
}

/// The one result of a one-job insert (a store that answered with none broke
/// its contract: an error, not a panic).
pub(crate) fn one(mut out: Vec<Inserted>) -> StoreResult<Inserted> {
    out.pop().ok_or(capstan_store::StoreError::Database {
        operation: "insert_many",
        source: "the store answered a one-job insert with no job".into(),
    })
}

async fn run<S: Store>(
    store: S,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::UnboundedReceiver<(NewJob, Reply)>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if batch.len() == 1 {
            let (job, reply) = batch.pop().expect("one request");
            let _ = reply.send(alone(&store, &config, &clock, job).await);
            continue;
        }
        let (jobs, replies): (Vec<NewJob>, Vec<Reply>) = batch.into_iter().unzip();
        let p = InsertMany {
            jobs,
            default_max_attempts: config.retry.default.max_attempts,
            now: clock.pinned(),
        };
        match store.insert_many(&p).await {
            Ok(inserted) if inserted.len() == replies.len() => {
                for (reply, i) in replies.into_iter().zip(inserted) {
                    let _ = reply.send(Ok(i));
                }
            }
            // The batch failed as a whole: each job alone, so each caller
            // gets its own outcome.
            _ => {
                for (job, reply) in p.jobs.into_iter().zip(replies) {
                    let _ = reply.send(alone(&store, &config, &clock, job).await);
                }
            }
        }
    }
}
