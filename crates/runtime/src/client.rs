//! The client: enqueue and operate on jobs from any process, whether or not
//! it runs a node.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::{Clock, Job, JobId, NewJob, SystemClock};
use capstan_store::jobs::{CancelJob, CancelOutcome, InsertMany, Inserted, ListJobs, RetryJob};
use capstan_store::queues::QueueCounts;
use capstan_store::{Store, StoreError, StoreTx};
use serde::Serialize;

use crate::{Config, Node, RuntimeError, Workers};

/// The result of enqueueing one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job's id.
    pub id: JobId,
    /// Its state right after enqueue.
    pub state: capstan_core::JobState,
    /// True when an existing job with the same idempotency or dedupe key was
    /// returned instead of a new one.
    pub existing: bool,
}

impl From<Inserted> for Enqueued {
    fn from(i: Inserted) -> Self {
        Enqueued {
            id: i.id,
            state: i.state,
            existing: i.existing,
        }
    }
}

/// A handle on Capstan for one store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client<S: Store> {
    pub(crate) store: S,
    pub(crate) config: Arc<Config>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Groups concurrent single enqueues (shared by clones).
    pub(crate) enqueuer: Arc<crate::enqueuer::Enqueuer>,
    /// Change hints for live views (shared by clones).
    pub(crate) hints: Arc<crate::changes::Hints>,
}

impl<S: Store> Client<S> {
    /// A client with the default configuration and the real clock.
    pub fn new(store: S) -> Self {
        Client {
            store,
            config: Arc::new(Config::default()),
            clock: Arc::new(SystemClock),
            enqueuer: Arc::new(crate::enqueuer::Enqueuer::new()),
            hints: Arc::default(),
        }
    }

    /// A client with `config`.
    ///
    /// # Errors
    /// [`RuntimeError::Config`] when the configuration cannot work.
    pub fn with_config(store: S, config: Config) -> Result<Self, RuntimeError> {
        config.validate()?;
        Ok(Client {
            store,
            config: Arc::new(config),
            clock: Arc::new(SystemClock),
            enqueuer: Arc::new(crate::enqueuer::Enqueuer::new()),
            hints: Arc::default(),
        })
    }

    /// Use `clock` for every time-based decision (tests pin time this way).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        // A batcher started under the old clock would keep it.
        self.enqueuer = Arc::new(crate::enqueuer::Enqueuer::new());
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// This process's change hints (see [`crate::changes`]).
    pub fn hints(&self) -> &crate::changes::Hints {
        &self.hints
    }

    /// The insert parameters for `jobs`, with each job's `max_attempts`
    /// resolved from the retry policies (what every enqueue passes to the
    /// store).
    pub fn insert_params(&self, jobs: Vec<NewJob>) -> InsertMany {
        InsertMany {
            jobs: jobs.into_iter().map(|j| self.with_attempts(j)).collect(),
            default_max_attempts: self.config.retry.default.max_attempts,
            now: self.clock.pinned(),
        }
    }

    /// `job` with its `max_attempts` resolved from the retry policies (its
    /// kind's, else its queue's, else the default) when it sets none.
    fn with_attempts(&self, mut job: NewJob) -> NewJob {
        if job.max_attempts.is_none() {
            job.max_attempts = Some(
                self.config
                    .retry
                    .for_job(&job.kind, &job.queue)
                    .max_attempts,
            );
        }
        job
    }

    /// Enqueue one job. Concurrent calls from one process share a round
    /// trip (group commit); a lone call goes at once.
    ///
    /// # Errors
    /// [`RuntimeError::Store`] with `Invalid` for a bad job (nothing written),
    /// or the database's error.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, RuntimeError> {
        job.validate().map_err(StoreError::from)?;
        let job = self.with_attempts(job);
        let inserted = self
            .enqueuer
            .insert(&self.store, &self.config, &self.clock, job)
            .await?;
        Ok(inserted.into())
    }

    /// Enqueue many jobs in one round trip; one result per job, in order. A
    /// bad job refuses the whole batch before anything is written.
    ///
    /// # Errors
    /// As [`Client::enqueue`].
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, RuntimeError> {
        let params = self.insert_params(jobs);
        let inserted = self.store.insert_many(&params).await?;
        Ok(inserted.into_iter().map(Enqueued::from).collect())
    }

    /// Enqueue one job inside a transaction (from [`Store::begin`], or your
    /// own wrapped with the backend's `wrap`): it exists, and wakes workers,
    /// only if the transaction commits, together with whatever else you
    /// wrote in it.
    ///
    /// ```ignore
    /// let mut tx = client.store().begin().await?;
    /// sqlx::query("INSERT INTO orders (id) VALUES ($1)").bind(7).execute(&mut *tx).await?;
    /// client.enqueue_in(&mut tx, NewJob::new("send_receipt", json!({"order": 7}))).await?;
    /// tx.commit().await?;
    /// ```
    ///
    /// On SQLite the transaction holds the file's one writer connection:
    /// while it is open, do not call this process's other writes (`enqueue`,
    /// `cancel`, a handler's heartbeat) from the task that holds it — they
    /// wait for that connection — and keep it short, since every heartbeat,
    /// claim and finish of the process waits for it too.
    ///
    /// # Errors
    /// As [`Client::enqueue`]. The call is all or nothing and an error
    /// leaves the transaction as it was (a refused job is refused before any
    /// SQL; keyed batches run in a savepoint), except that on PostgreSQL a
    /// database error in a batch without keys aborts the transaction, as any
    /// failed statement does: roll it back.
    pub async fn enqueue_in<T: StoreTx>(
        &self,
        tx: &mut T,
        job: NewJob,
    ) -> Result<Enqueued, RuntimeError> {
        let params = self.insert_params(vec![job]);
        Ok(crate::enqueuer::one(tx.insert_many(&params).await?)?.into())
    }

    /// Enqueue many jobs inside a transaction (see [`Client::enqueue_in`]).
    ///
    /// # Errors
    /// As [`Client::enqueue`].
    pub async fn enqueue_many_in<T: StoreTx>(
        &self,
        tx: &mut T,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>, RuntimeError> {
        let params = self.insert_params(jobs);
        let inserted = tx.insert_many(&params).await?;
        Ok(inserted.into_iter().map(Enqueued::from).collect())
    }

    /// One job.
    ///
    /// # Errors
    /// The database's error.
    pub async fn job(&self, id: JobId) -> Result<Option<Job>, RuntimeError> {
        Ok(self.store.get_job(id).await?)
    }

    /// Jobs matching `filter`, newest first.
    ///
    /// # Errors
    /// The database's error.
    pub async fn list_jobs(&self, filter: &ListJobs) -> Result<Vec<Job>, RuntimeError> {
        Ok(self.store.list_jobs(filter).await?)
    }

    /// Cancel a job: a waiting job becomes `cancelled`; a running job's
    /// handler is asked to stop (its node hears it within milliseconds on
    /// PostgreSQL, within a heartbeat otherwise).
    ///
    /// # Errors
    /// `NotFound`, or `InvalidTransition` for a finished job.
    pub async fn cancel(&self, id: JobId) -> Result<CancelOutcome, RuntimeError> {
        let outcome = self
            .store
            .cancel_job(&CancelJob {
                id,
                now: self.clock.pinned(),
            })
            .await?;
        self.hints.send(&self.store, [id], true);
        Ok(outcome)
    }

    /// Run a job again now (failed, cancelled, completed or waiting).
    ///
    /// # Errors
    /// `NotFound`, or `InvalidTransition` for a running job.
    pub async fn retry(&self, id: JobId) -> Result<Job, RuntimeError> {
        let job = self
            .store
            .retry_job(&RetryJob {
                id,
                now: self.clock.pinned(),
            })
            .await?;
        self.hints.send(&self.store, [id], true);
        Ok(job)
    }

    /// Jobs per queue and state.
    ///
    /// # Errors
    /// The database's error.
    pub async fn queue_counts(&self) -> Result<Vec<QueueCounts>, RuntimeError> {
        Ok(self.store.queue_counts().await?)
    }

    /// Wait until a job is completed, failed or cancelled, and return it.
    /// Wakes on this process's hints and polls (every 20 ms, growing to 1 s)
    /// for the rest.
    ///
    /// # Errors
    /// `NotFound`; [`RuntimeError::WaitTimeout`] after `timeout`.
    pub async fn wait(&self, id: JobId, timeout: Duration) -> Result<Job, RuntimeError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let job = self
                .store
                .get_job(id)
                .await?
                .ok_or(capstan_store::StoreError::NotFound { job_id: id })?;
            if job.state.is_finished() {
                return Ok(job);
            }
            let elapsed = started.elapsed();
            if elapsed >= timeout {
                return Err(RuntimeError::WaitTimeout {
                    job_id: id,
                    waited: timeout,
                    state: job.state,
                });
            }
            tokio::time::sleep(pause.min(timeout - elapsed)).await;
            pause = (pause * 3 / 2).min(Duration::from_secs(1));
        }
    }

    /// Every registered node (live or not yet removed).
    ///
    /// # Errors
    /// The database's error.
    pub async fn nodes(&self) -> Result<Vec<capstan_store::nodes::NodeInfo>, RuntimeError> {
        Ok(self.store.list_nodes().await?)
    }

    /// True when a live node serves `queue` with a handler for `kind`: a job
    /// of that kind in that queue will run. Live is judged on this client's
    /// clock, against each node's own expiry.
    ///
    /// # Errors
    /// The database's error.
    pub async fn is_handled(&self, queue: &str, kind: &str) -> Result<bool, RuntimeError> {
        let now = self.clock.now();
        Ok(self
            .nodes()
            .await?
            .iter()
            .any(|n| n.handles(queue, kind, now)))
    }

    /// A node that runs no jobs: it serves no queue, but registers,
    /// heartbeats and takes its share of maintenance (promoting due jobs,
    /// rescuing the jobs of dead nodes and pull workers, deleting old ones).
    /// What an API-only process runs (`capstan serve --no-worker`), so that
    /// a deployment whose workers all pull over HTTP is still maintained.
    pub fn maintenance_node(&self) -> Node<S> {
        Node::maintenance(self.clone())
    }

    /// A node that runs `workers` on this client's queues.
    ///
    /// # Errors
    /// [`RuntimeError::Config`] when a queue is configured wrongly.
    pub fn node(&self, workers: Workers) -> Result<Node<S>, RuntimeError> {
        Node::new(self.clone(), workers)
    }
}
