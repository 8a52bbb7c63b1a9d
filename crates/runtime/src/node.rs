//! A node: one process serving queues. It registers, starts its services,
//! runs until the shutdown future resolves, then stops in two steps:
//!
//! 1. soft: producers stop claiming; running jobs get `shutdown_grace` to finish;
//! 2. hard: what still runs is told to stop, given `cancel_grace`, dropped, and
//!    handed back to its queue without burning an attempt.
//!
//! Then the completer writes every finish it holds and the node deregisters.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use capstan_core::{Job, JobId, NodeId};
use capstan_store::{Finish, RegisterNode, Store};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::completer::Completer;
use crate::context::{LeaseKeeper, StoreLeaseKeeper};
use crate::maintenance::{cleaner, rescuer, scheduler};
use crate::producer::Producer;
use crate::{Client, RuntimeError, Workers, dispatch, executor, heartbeat};

/// What every service of a running node shares.
pub(crate) struct Shared<S: Store> {
    pub(crate) client: Client<S>,
    pub(crate) node_id: NodeId,
    pub(crate) workers: Workers,
    pub(crate) completer: mpsc::Sender<Finish>,
    pub(crate) keeper: Arc<dyn LeaseKeeper>,
    /// Fired after the shutdown grace: handlers still running are handed back.
    pub(crate) hard_stop: CancellationToken,
    /// Fired only by [`NodeHandle::abort`]: everything stops at once and
    /// nothing more is written, as in a crash.
    pub(crate) crash: CancellationToken,
    /// The executor tasks of running jobs.
    pub(crate) jobs: TaskTracker,
    running: Mutex<HashMap<JobId, (i32, CancellationToken)>>,
}

impl<S: Store> Shared<S> {
    pub(crate) fn start(self: &Arc<Self>, job: Job, permit: OwnedSemaphorePermit) {
        self.jobs
            .spawn(executor::execute(self.clone(), job, permit));
    }

    pub(crate) fn track_running(&self, id: JobId, attempt: i32, cancel: CancellationToken) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (attempt, cancel));
    }

    pub(crate) fn untrack_running(&self, id: JobId) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Cancel the handler of `id` if it runs here (and, when given, runs `attempt`).
    pub(crate) fn cancel_running(&self, id: JobId, attempt: Option<i32>) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((a, token)) = running.get(&id)
            && attempt.is_none_or(|want| want == *a)
        {
            tracing::info!(job_id = %id, "cancelling running job on request");
            token.cancel();
        }
    }

    fn running_count(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One process serving queues; see the module docs for its life cycle.
#[derive(Debug)]
pub struct Node<S: Store> {
    client: Client<S>,
    workers: Workers,
    id: NodeId,
}

impl<S: Store> Node<S> {
    pub(crate) fn new(client: Client<S>, workers: Workers) -> Result<Self, RuntimeError> {
        // The client's config was validated when the client was built.
        if workers.kinds().is_empty() {
            return Err(RuntimeError::Config(
                "a node needs at least one handler: register one with Workers::register".into(),
            ));
        }
        if client.config.queues.is_empty() {
            return Err(RuntimeError::Config(
                "a node needs at least one queue to serve".into(),
            ));
        }
        let id = client
            .config
            .node_id
            .clone()
            .unwrap_or_else(|| NodeId::generate(&host_name()));
        Ok(Node {
            client,
            workers,
            id,
        })
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// Run until `shutdown` resolves, then shut down gracefully.
    ///
    /// # Errors
    /// When the node cannot register or subscribe (the database is
    /// unreachable). Errors while running are logged and retried.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RuntimeError> {
        self.run_until(shutdown, CancellationToken::new()).await
    }

    /// `run`, and stop at once, writing nothing more, when `crash` fires.
    async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
        crash: CancellationToken,
    ) -> Result<(), RuntimeError> {
        let Node {
            client,
            workers,
            id,
        } = self;
        let config = client.config.clone();
        let store = client.store.clone();
        let queues: Vec<String> = config.queues.iter().map(|q| q.name.clone()).collect();
        let report = store
            .register_node(&RegisterNode {
                node: id.clone(),
                queues: queues.clone(),
                now: client.clock.pinned(),
            })
            .await?;
        if report.reclaimed > 0 {
            tracing::warn!(node = %id, reclaimed = report.reclaimed, "took back jobs a previous process with this node id left running");
        }
        let wakeups = store.subscribe().await?;
        let (tx, rx) = mpsc::channel(config.complete_batch.saturating_mul(4).max(64));
        let shared = Arc::new(Shared {
            client: client.clone(),
            node_id: id.clone(),
            workers,
            completer: tx,
            keeper: Arc::new(StoreLeaseKeeper {
                store: store.clone(),
                node: id.clone(),
                clock: client.clock.clone(),
            }),
            hard_stop: crash.child_token(),
            crash: crash.clone(),
            jobs: TaskTracker::new(),
            running: Mutex::new(HashMap::new()),
        });

        let stop_claiming = crash.child_token();
        let stop_all = crash.child_token();
        let services = TaskTracker::new();
        let producers = TaskTracker::new();

        let completer_stop = crash.child_token();
        let completer = Completer {
            store: store.clone(),
            node: id.clone(),
            clock: client.clock.clone(),
            rx,
            batch: config.complete_batch,
            crash: crash.clone(),
        };
        let completer_task = tokio::spawn(completer.run(completer_stop.clone()));

        let mut notifies = BTreeMap::new();
        for q in &config.queues {
            let wake = Arc::new(Notify::new());
            notifies.insert(q.name.clone(), wake.clone());
            let producer = Producer {
                shared: shared.clone(),
                queue: q.name.clone(),
                concurrency: q.concurrency,
                wake,
            };
            producers.spawn(producer.run(stop_claiming.clone()));
        }
        let scheduler_wake = Arc::new(Notify::new());
        services.spawn(dispatch::run(
            wakeups,
            notifies,
            scheduler_wake.clone(),
            shared.clone(),
            stop_all.clone(),
        ));
        services.spawn(heartbeat::run(shared.clone(), stop_all.clone()));
        services.spawn(scheduler::run(
            client.clone(),
            scheduler_wake,
            stop_claiming.clone(),
        ));
        services.spawn(rescuer::run(client.clone(), stop_claiming.clone()));
        services.spawn(cleaner::run(client.clone(), stop_claiming.clone()));
        tracing::info!(node = %id, queues = ?queues, kinds = ?shared.workers.kinds(), backend = store.capabilities().backend, "node started");

        tokio::select! {
            () = shutdown => {}
            () = crash.cancelled() => {
                tracing::warn!(node = %id, "node aborted: nothing handed back, jobs left for the rescuer");
                return Ok(());
            }
        }

        tracing::info!(node = %id, running = shared.running_count(), grace = ?config.shutdown_grace, "shutting down: no new claims; waiting for running jobs");
        stop_claiming.cancel();
        producers.close();
        producers.wait().await;
        shared.jobs.close();
        if tokio::time::timeout(config.shutdown_grace, shared.jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!(node = %id, running = shared.running_count(), "grace period over: cancelling and handing back the jobs still running");
            shared.hard_stop.cancel();
            shared.jobs.wait().await;
        }
        completer_stop.cancel();
        let _ = completer_task.await;
        stop_all.cancel();
        services.close();
        services.wait().await;
        store.deregister_node(&id).await?;
        tracing::info!(node = %id, "node stopped");
        Ok(())
    }

    /// Run in the background; the handle stops it.
    pub fn start(self) -> NodeHandle {
        let id = self.id.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let crash = CancellationToken::new();
        let task = tokio::spawn(self.run_until(
            async move {
                let _ = rx.await;
            },
            crash.clone(),
        ));
        NodeHandle {
            id,
            stop: Some(tx),
            crash,
            task,
        }
    }
}

/// A node running in the background.
#[derive(Debug)]
pub struct NodeHandle {
    id: NodeId,
    stop: Option<oneshot::Sender<()>>,
    crash: CancellationToken,
    task: JoinHandle<Result<(), RuntimeError>>,
}

impl NodeHandle {
    /// The node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// Shut the node down gracefully and wait until it has stopped.
    ///
    /// # Errors
    /// The node's own error, if it failed.
    pub async fn shutdown(mut self) -> Result<(), RuntimeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(RuntimeError::Config(format!("node task failed: {e}"))),
        }
    }

    /// Stop the node abruptly, as a crash would: handlers are dropped, no
    /// finish is written, nothing is handed back and the node does not
    /// deregister (its jobs wait for the rescuer).
    pub async fn abort(self) {
        self.crash.cancel();
        let _ = self.task.await;
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "capstan".to_owned())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(40)
        .collect()
}
