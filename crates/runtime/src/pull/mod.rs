//! Pull workers: workers in any language that claim jobs over a protocol
//! (the HTTP API), heartbeat them, and complete or fail them by lease.
//!
//! A pull worker is a row in the nodes table, written by whichever Capstan
//! process it calls (incarnation [`PULL_INCARNATION`]), listing the queues
//! and kinds it asked for — so the parker never sets their jobs aside — and
//! expiring when the worker has made no call for `worker_timeout`: the
//! rescuer then takes its jobs back as for any dead node. A lease that
//! expired while its worker still calls is taken back a `worker_timeout`
//! after its expiry (the rescue rule for every holder). Every write names
//! the lease its claim handed out, so a worker that lost a job (rescued,
//! finished elsewhere, retried by hand) is fenced and changes nothing.

mod bells;
mod registry;

use std::sync::Arc;
use std::time::Duration;

use capstan_core::limits::{self, MAX_DELAY, MAX_PROGRESS_BYTES, MAX_RESULT_BYTES};
use capstan_core::{ANY_KIND, Job, Lease, NodeId, Timestamp, validate_queue};
use capstan_store::jobs::{
    Claim, ExtendLeases, Extension, Finish, FinishMany, LeaseReport, Outcome,
};
use capstan_store::nodes::HeartbeatNode;
use capstan_store::{Store, StoreError};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{Client, JobError, RuntimeError};

use bells::Bells;
use registry::Registry;

/// The incarnation of every pull worker's row: any Capstan process may
/// write it, and no node process ever has it.
pub const PULL_INCARNATION: &str = "pull";

/// How a process serves pull workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullConfig {
    /// A worker that makes no call for this long is dead: its jobs are
    /// rescued.
    pub worker_timeout: Duration,
    /// Most jobs one claim may take.
    pub max_claim: u32,
    /// Longest a claim waits for jobs (a longer wait is shortened to it).
    pub max_wait: Duration,
}

impl PullConfig {
    /// A worker is dead after 60 s without a call.
    pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(60);
    /// At most 1,000 jobs per claim.
    pub const DEFAULT_MAX_CLAIM: u32 = 1000;
    /// A claim waits at most 30 s.
    pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

    /// How often a calling worker's row is written: a sixth of its timeout.
    fn beat_every(&self) -> Duration {
        self.worker_timeout / 6
    }
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            worker_timeout: Self::DEFAULT_WORKER_TIMEOUT,
            max_claim: Self::DEFAULT_MAX_CLAIM,
            max_wait: Self::DEFAULT_MAX_WAIT,
        }
    }
}

/// A claim by a pull worker.
#[derive(Debug, Clone)]
pub struct PullClaim {
    /// The worker's name, unique among live workers and nodes.
    pub worker: String,
    /// The queue.
    pub queue: String,
    /// At most this many jobs.
    pub max: u32,
    /// When none is available, wait this long for one.
    pub wait: Duration,
    /// Only these kinds (`None`: any kind).
    pub kinds: Option<Vec<String>>,
}

/// A heartbeat of one running job.
#[derive(Debug, Clone)]
pub struct PullBeat {
    /// The execution.
    pub lease: Lease,
    /// Progress to record (`None` keeps the last).
    pub progress: Option<Value>,
}

/// What a heartbeat did to one job.
#[derive(Debug, Clone, PartialEq)]
pub enum Beaten {
    /// The lease now runs until about `expires_at`.
    Extended {
        /// The execution.
        lease: Lease,
        /// When the lease ends unless the worker beats again.
        expires_at: Timestamp,
        /// A user asked to cancel the job: stop, and fail it.
        cancel_requested: bool,
    },
    /// The worker no longer holds the job: stop working on it.
    Fenced {
        /// The execution.
        lease: Lease,
    },
}

/// A failed attempt, as a pull worker reports it.
#[derive(Debug, Clone)]
pub struct PullFailure {
    /// What went wrong.
    pub message: String,
    /// Retrying cannot help: fail the job now.
    pub permanent: bool,
    /// Retry after exactly this long instead of the retry policy's backoff.
    pub retry_after: Option<Duration>,
    /// The HTTP status the worker's own call got, if that is why it failed:
    /// [`Verdict`](crate::Verdict)'s table decides whether the job is
    /// retried, as for a push queue (a 4xx but 429 fails it for good, 410
    /// included; a 5xx, 429 or 3xx retries it), and it goes into the
    /// attempt history. `permanent` still fails it for good.
    pub status: Option<u16>,
}

/// Serves pull workers for one process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PullWorkers<S: Store> {
    inner: Arc<Inner<S>>,
}

#[derive(Debug)]
struct Inner<S: Store> {
    client: Client<S>,
    config: PullConfig,
    registry: Registry,
    bells: Arc<Bells>,
    stop: CancellationToken,
}

impl<S: Store> PullWorkers<S> {
    /// Serve pull workers through `client` until `stop`: waiting claims
    /// return (empty) at once when it is cancelled.
    ///
    /// # Errors
    /// [`RuntimeError::Config`] for a configuration that cannot work, or the
    /// store's error when it cannot subscribe to wake-ups.
    pub async fn start(
        client: Client<S>,
        config: PullConfig,
        stop: CancellationToken,
    ) -> Result<Self, RuntimeError> {
        if config.worker_timeout < Duration::from_secs(1)
            || config.worker_timeout > limits::MAX_TIMEOUT
        {
            return Err(RuntimeError::Config(format!(
                "worker_timeout {:?} must be between 1s and 365d",
                config.worker_timeout
            )));
        }
        if !(1..=100_000).contains(&config.max_claim) {
            return Err(RuntimeError::Config(format!(
                "max_claim {} must be between 1 and 100000",
                config.max_claim
            )));
        }
        if config.max_wait >= config.worker_timeout {
            return Err(RuntimeError::Config(format!(
                "max_wait {:?} must be shorter than worker_timeout {:?}: a worker waiting in a claim would be judged dead",
                config.max_wait, config.worker_timeout
            )));
        }
        let bells = Arc::new(Bells::default());
        let notifications = client.store.subscribe(&bells::TOPICS).await?;
        tokio::spawn(bells::listen(
            notifications,
            bells.clone(),
            client.hints.clone(),
            stop.clone(),
        ));
        Ok(PullWorkers {
            inner: Arc::new(Inner {
                client,
                config,
                registry: Registry::default(),
                bells,
                stop,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PullConfig {
        &self.inner.config
    }

    /// The client.
    pub fn client(&self) -> &Client<S> {
        &self.inner.client
    }

    /// Claim up to `max` jobs of a queue for a worker; when none is
    /// available, wait up to `wait` (at most `max_wait`) for one, woken at
    /// once by an enqueue, and return none if nothing came. Each job comes
    /// with its lease.
    ///
    /// # Errors
    /// [`RuntimeError::Invalid`] for a bad field (nothing changed),
    /// [`RuntimeError::WorkerNameInUse`], or the database's error.
    pub async fn claim(&self, req: &PullClaim) -> Result<Vec<Job>, RuntimeError> {
        let inner = &*self.inner;
        check_worker(&req.worker)?;
        validate_queue(&req.queue).map_err(|e| invalid("queue", e.to_string()))?;
        if req.max == 0 || req.max > inner.config.max_claim {
            return Err(invalid(
                "max",
                format!(
                    "{} is not between 1 and {}",
                    req.max, inner.config.max_claim
                ),
            ));
        }
        if let Some(kinds) = &req.kinds {
            check_kinds(kinds)?;
        }
        self.beat_worker(&req.worker, &[req.queue.as_str()], req.kinds.as_deref())
            .await?;
        let config = &inner.client.config;
        let claim = Claim {
            queue: req.queue.clone(),
            kinds: req.kinds.clone(),
            limit: req.max,
            node: NodeId(req.worker.clone()),
            default_timeout: config.default_timeout,
            lease_grace: config.lease_grace,
            now: None,
            after: None,
        };
        // A longer wait than this process allows is shortened: the worker
        // asks again.
        let deadline = tokio::time::Instant::now() + req.wait.min(inner.config.max_wait);
        let bell = inner.bells.bell(&req.queue);
        loop {
            // Listen before looking, so an enqueue between the claim and
            // the wait still wakes this one.
            let rung = bell.notified();
            tokio::pin!(rung);
            rung.as_mut().enable();
            let jobs = inner
                .client
                .store
                .claim(&Claim {
                    now: inner.client.clock.pinned(),
                    ..claim.clone()
                })
                .await?;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !jobs.is_empty() || left.is_zero() || inner.stop.is_cancelled() {
                self.hint(jobs.iter().map(|j| j.id));
                return Ok(jobs);
            }
            // Hints can be lost (another process without a channel, a
            // reconnect): look again now and then all the same.
            tokio::select! {
                () = &mut rung => {}
                () = tokio::time::sleep(left.min(FALLBACK)) => {}
                () = inner.stop.cancelled() => return Ok(Vec::new()),
            }
            self.beat_worker(&req.worker, &[req.queue.as_str()], req.kinds.as_deref())
                .await?;
        }
    }

    /// Extend the leases of running jobs and record their progress: each
    /// lease then runs the job's timeout (its own, else the default) plus
    /// the lease grace from now. `worker`, when given, names the caller, so
    /// that its row is kept alive by any Capstan process it calls.
    ///
    /// # Errors
    /// [`RuntimeError::Invalid`] for progress too big (nothing changed), or
    /// the database's error.
    pub async fn heartbeat(
        &self,
        worker: Option<&str>,
        beats: Vec<PullBeat>,
    ) -> Result<Vec<Beaten>, RuntimeError> {
        let inner = &*self.inner;
        if let Some(w) = worker {
            check_worker(w)?;
        }
        for b in &beats {
            if let Some(p) = &b.progress {
                limits::check_json("progress", p, MAX_PROGRESS_BYTES, false)
                    .map_err(|e| invalid("progress", e.to_string()))?;
            }
        }
        let config = &inner.client.config;
        // Each lease with its job, when the job is still held under it.
        let mut held = Vec::with_capacity(beats.len());
        let mut extensions = Vec::with_capacity(beats.len());
        let progressed: Vec<capstan_core::JobId> = beats
            .iter()
            .filter(|b| b.progress.is_some())
            .map(|b| b.lease.job_id)
            .collect();
        // The jobs, in one read whatever the batch's size.
        let jobs: std::collections::HashMap<capstan_core::JobId, Job> = inner
            .client
            .store
            .list_jobs(&capstan_store::jobs::ListJobs {
                limit: u32::try_from(beats.len()).unwrap_or(u32::MAX),
                ids: Some(beats.iter().map(|b| b.lease.job_id).collect()),
                ..Default::default()
            })
            .await?
            .into_iter()
            .map(|j| (j.id, j))
            .collect();
        let mut extended = std::collections::HashSet::new();
        for b in beats {
            let job = jobs.get(&b.lease.job_id).cloned();
            let job = job.filter(|j| j.lease().as_ref() == Some(&b.lease));
            let job = job.map(|job| {
                let duration = job.timeout_or(config.default_timeout) + config.lease_grace;
                // A job named twice is extended once (its first progress).
                if extended.insert(b.lease.job_id) {
                    extensions.push(Extension {
                        lease: b.lease.clone(),
                        duration,
                        progress: b.progress,
                    });
                }
                (job, duration)
            });
            held.push((b.lease, job));
        }
        let report = if extensions.is_empty() {
            LeaseReport::default()
        } else {
            inner
                .client
                .store
                .extend_leases(&ExtendLeases {
                    leases: extensions,
                    now: inner.client.clock.pinned(),
                })
                .await?
        };
        self.hint(
            report
                .accepted
                .iter()
                .filter(|l| progressed.contains(&l.job_id))
                .map(|l| l.job_id),
        );
        let now = inner.client.clock.now();
        let mut out = Vec::with_capacity(held.len());
        let mut holders: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for (lease, job) in held {
            let Some((job, duration)) = job.filter(|_| report.accepted.contains(&lease)) else {
                out.push(Beaten::Fenced { lease });
                continue;
            };
            if let Some(holder) = job.node_id.as_ref().map(NodeId::as_str)
                && worker.is_none_or(|w| w == holder)
            {
                match holders.iter_mut().find(|(w, _, _)| w == holder) {
                    Some((_, qs, ks)) => {
                        qs.push(job.queue.clone());
                        ks.push(job.kind.clone());
                    }
                    None => holders.push((holder.to_owned(), vec![job.queue], vec![job.kind])),
                }
            }
            out.push(Beaten::Extended {
                lease,
                expires_at: now
                    + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX),
                cancel_requested: job.cancel_requested,
            });
        }
        // Keep the holders' rows alive: the named worker's always, another
        // holder's only if this process serves it (a lease is no proof of
        // being that worker).
        for (name, queues, kinds) in holders {
            if worker.is_some() || inner.registry.knows(&name) {
                let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
                self.beat_worker(&name, &queues, Some(&kinds)).await?;
            }
        }
        Ok(out)
    }

    /// Complete jobs with their results, in one round trip.
    ///
    /// # Errors
    /// [`RuntimeError::Invalid`] for a result too big (nothing changed), or
    /// the database's error.
    pub async fn complete(&self, done: Vec<(Lease, Value)>) -> Result<LeaseReport, RuntimeError> {
        for (_, result) in &done {
            limits::check_json("result", result, MAX_RESULT_BYTES, false)
                .map_err(|e| invalid("result", e.to_string()))?;
        }
        let finishes = done
            .into_iter()
            .map(|(lease, result)| Finish {
                lease,
                outcome: Outcome::Complete { result },
            })
            .collect();
        self.finish(finishes).await
    }

    /// Fail an attempt: retried after the job's retry policy (or exactly
    /// `retry_after`) while attempts are left, failed for good when it is
    /// permanent or none are left. Returns the job as it is now.
    ///
    /// # Errors
    /// `Fenced` when the worker no longer holds the job, `NotFound`,
    /// [`RuntimeError::Invalid`] for a `retry_after` over 100 years, or the
    /// database's error.
    pub async fn fail(&self, lease: Lease, failure: PullFailure) -> Result<Job, RuntimeError> {
        let inner = &*self.inner;
        if let Some(d) = failure.retry_after
            && d > MAX_DELAY
        {
            return Err(invalid(
                "retry_after",
                format!("{d:?} is longer than the limit of 100 years"),
            ));
        }
        let (permanent, message) = match failure.status {
            None => (failure.permanent, failure.message),
            Some(s) if !(100..=599).contains(&s) => {
                return Err(invalid(
                    "status",
                    format!("{s} is not an HTTP status (100 to 599)"),
                ));
            }
            Some(s) if crate::Verdict::of(s) == crate::Verdict::Complete => {
                return Err(invalid(
                    "status",
                    format!("{s} is a success: complete the job instead"),
                ));
            }
            Some(s) => (
                failure.permanent || !crate::Verdict::of(s).retries(),
                format!("HTTP {s}: {}", failure.message),
            ),
        };
        let job = inner
            .client
            .store
            .get_job(lease.job_id)
            .await?
            .ok_or(StoreError::NotFound {
                job_id: lease.job_id,
            })?;
        if job.lease().as_ref() != Some(&lease) {
            return Err(StoreError::Fenced { lease }.into());
        }
        let error = match (permanent, failure.retry_after) {
            (true, _) => JobError::permanent(message),
            (false, Some(after)) => JobError::retry_after(message, after),
            (false, None) => JobError::retryable(message),
        };
        let outcome = crate::executor::after_error(&job, error, &inner.client.config.retry);
        let report = self
            .finish(vec![Finish {
                lease: lease.clone(),
                outcome,
            }])
            .await?;
        if !report.fenced.is_empty() {
            return Err(StoreError::Fenced { lease }.into());
        }
        inner
            .client
            .store
            .get_job(lease.job_id)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound {
                    job_id: lease.job_id,
                }
                .into()
            })
    }

    /// Give jobs back to their queue without using up an attempt (a worker
    /// that stops before running them, or stops them to shut down).
    ///
    /// # Errors
    /// The database's error.
    pub async fn release(&self, leases: Vec<Lease>) -> Result<LeaseReport, RuntimeError> {
        self.finish(
            leases
                .into_iter()
                .map(|lease| Finish {
                    lease,
                    outcome: Outcome::HandBack,
                })
                .collect(),
        )
        .await
    }

    async fn finish(&self, finishes: Vec<Finish>) -> Result<LeaseReport, RuntimeError> {
        let inner = &*self.inner;
        let report = inner
            .client
            .store
            .finish_many(&FinishMany {
                finishes,
                now: inner.client.clock.pinned(),
            })
            .await?;
        self.hint(report.accepted.iter().map(|l| l.job_id));
        Ok(report)
    }

    /// Tell live views that these jobs changed (if any are open).
    fn hint(&self, ids: impl IntoIterator<Item = capstan_core::JobId>) {
        let client = &self.inner.client;
        client.hints.send(&client.store, ids, false);
    }

    /// Write `worker`'s row if it is due (see the registry).
    async fn beat_worker(
        &self,
        worker: &str,
        queues: &[&str],
        kinds: Option<&[String]>,
    ) -> Result<(), RuntimeError> {
        let inner = &*self.inner;
        let now = inner.client.clock.now();
        let every = inner.config.beat_every();
        let Some(row) = inner.registry.due(worker, queues, kinds, now, every) else {
            return Ok(());
        };
        let beat = inner
            .client
            .store
            .heartbeat_node(&HeartbeatNode {
                node: NodeId(worker.to_owned()),
                incarnation: PULL_INCARNATION.to_owned(),
                queues: row.queues,
                kinds: row.kinds,
                interval: every,
                timeout: inner.config.worker_timeout,
                now: inner.client.clock.pinned(),
            })
            .await?;
        if beat.replaced {
            return Err(RuntimeError::WorkerNameInUse {
                worker: worker.to_owned(),
            });
        }
        inner.registry.beaten(worker, now);
        Ok(())
    }
}

/// A waiting claim looks again at least this often, hint or not.
const FALLBACK: Duration = Duration::from_secs(5);

fn invalid(field: &'static str, message: String) -> RuntimeError {
    RuntimeError::Invalid { field, message }
}

/// A worker's name: 1 to 200 characters from `A-Z a-z 0-9 _ . : - @`.
fn check_worker(name: &str) -> Result<(), RuntimeError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "worker",
            format!("{name:?}: a worker name is 1 to 200 characters from A-Z a-z 0-9 _ . : - @"),
        ))
    }
}

fn check_kinds(kinds: &[String]) -> Result<(), RuntimeError> {
    if kinds.is_empty() {
        return Err(invalid(
            "kinds",
            "an empty list takes nothing: name at least one kind, or leave kinds out for any kind"
                .into(),
        ));
    }
    for k in kinds {
        if k.is_empty() || k.chars().count() > 200 || k == ANY_KIND {
            return Err(invalid(
                "kinds",
                format!("{k:?}: a kind is 1 to 200 characters (leave kinds out for any kind)"),
            ));
        }
    }
    Ok(())
}
