//! A node: one process serving queues. It registers, starts its services,
//! runs until the shutdown future resolves, then stops in two steps:
//!
//! 1. soft: producers stop claiming; running jobs get `shutdown_grace` to finish;
//! 2. hard: what still runs is told to stop, given `cancel_grace`, dropped, and
//!    handed back to its queue without burning an attempt. A second signal
//!    (the `force` future of [`Node::run_with_force`]) skips the grace.
//!
//! Then the completer writes every finish it holds and the node deregisters.
//!
//! Registering refuses a node id that a live process uses. A row under the
//! id that still looks alive may be a crashed predecessor (restarted at once)
//! or a live twin. A predecessor on this host whose process is gone is taken
//! over at once; otherwise the node waits a little longer than the other's
//! heartbeat interval, and takes the id over only if the other did not beat
//! meanwhile.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use capstan_core::NodeId;
use capstan_store::nodes::{DeregisterNode, RegisterNode, RegisterReport};
use capstan_store::{Store, StoreError};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::completer::Completer;
use crate::context::StoreLeaseKeeper;
use crate::executor::{Executor, ExecutorConfig};
use crate::heartbeat::{Heartbeat, HeartbeatConfig};
use crate::leases::Leases;
use crate::maintenance::{
    Cleaner, CleanerConfig, Elector, ElectorConfig, Led, Maintainer, Parker, ParkerConfig, Rescuer,
    RescuerConfig, Scheduler, SchedulerConfig,
};
use crate::producer::{Producer, ProducerConfig};
use crate::running::Shared;
use crate::{Client, RuntimeError, Workers, dispatch};

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

    /// A node that runs no jobs (see [`Client::maintenance_node`]).
    pub(crate) fn maintenance(client: Client<S>) -> Self {
        let mut config = (*client.config).clone();
        config.queues.clear();
        let id = config
            .node_id
            .clone()
            .unwrap_or_else(|| NodeId::generate(&host_name()));
        Node {
            client: Client {
                config: Arc::new(config),
                ..client
            },
            workers: Workers::new(),
            id,
        }
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// Run until `shutdown` resolves, then shut down gracefully.
    ///
    /// # Errors
    /// When the node id is in use by another live process, or the node
    /// cannot subscribe to wake-ups. An unreachable database is retried with
    /// backoff (logged) until it answers or `shutdown` resolves; errors while
    /// running are logged and retried.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RuntimeError> {
        self.run_until(shutdown, std::future::pending(), CancellationToken::new())
            .await
    }

    /// [`Node::run`], and when `force` resolves during the shutdown (a second
    /// ctrl-c), skip what is left of the grace period: stop the handlers and
    /// hand their jobs back at once.
    ///
    /// # Errors
    /// As [`Node::run`].
    pub async fn run_with_force(
        self,
        shutdown: impl Future<Output = ()> + Send,
        force: impl Future<Output = ()> + Send,
    ) -> Result<(), RuntimeError> {
        self.run_until(shutdown, force, CancellationToken::new())
            .await
    }

    /// `run`, and stop at once, writing nothing more, when `crash` fires.
    async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
        force: impl Future<Output = ()> + Send,
        crash: CancellationToken,
    ) -> Result<(), RuntimeError> {
        let Node {
            client,
            workers,
            id,
        } = self;
        let config = client.config.clone();
        let store = client.store.clone();
        let (tx, rx) = mpsc::channel(config.complete_batch.saturating_mul(4).max(64));
        let shared = Arc::new(Shared {
            client: client.clone(),
            node_id: id.clone(),
            incarnation: incarnation(),
            workers,
            completer: tx,
            keeper: Arc::new(StoreLeaseKeeper {
                store: store.clone(),
                clock: client.clock.clone(),
                hints: client.hints.clone(),
            }),
            hard_stop: crash.child_token(),
            crash: crash.clone(),
            replaced: CancellationToken::new(),
            jobs: TaskTracker::new(),
            leases: Leases::default(),
            health: Arc::default(),
        });
        tokio::pin!(shutdown);
        tokio::pin!(force);
        let Some(report) = register(&shared, shutdown.as_mut(), &crash).await? else {
            return Ok(());
        };
        if report.reclaimed > 0 {
            tracing::warn!(node = %id, reclaimed = report.reclaimed, "took back jobs a previous process with this node id left running");
        }
        let Some(notifications) = subscribe(&shared, shutdown.as_mut(), &crash).await? else {
            return Ok(());
        };

        let stop_claiming = crash.child_token();
        let stop_all = crash.child_token();
        let services = TaskTracker::new();
        let producers = TaskTracker::new();

        let completer_stop = crash.child_token();
        let completer = Completer {
            store: store.clone(),
            clock: client.clock.clone(),
            rx,
            batch: config.complete_batch,
            final_flush: config.shutdown_grace,
            stopping: stop_claiming.clone(),
            crash: crash.clone(),
            hints: client.hints.clone(),
        };
        let completer_task = tokio::spawn(completer.run(completer_stop.clone()));

        let mut notifies = BTreeMap::new();
        let executor = Executor::new(shared.clone(), ExecutorConfig::of(&config));
        for q in &config.queues {
            let wake = Arc::new(dispatch::Wake::default());
            notifies.insert(q.name.clone(), wake.clone());
            let producer = Producer::new(
                shared.clone(),
                executor.clone(),
                ProducerConfig::of(&config, q),
                wake,
            );
            producers.spawn(producer.run(stop_claiming.clone()));
        }
        let scheduler_wake = Arc::new(Notify::new());
        services.spawn(dispatch::run(
            notifications,
            notifies,
            scheduler_wake.clone(),
            shared.clone(),
            stop_all.clone(),
        ));
        let heartbeat = Heartbeat::new(shared.clone(), HeartbeatConfig::of(&config));
        services.spawn(heartbeat.run(stop_all.clone()));
        let clock = &client.clock;
        let maintainer = Maintainer {
            scheduler: Scheduler::new(
                store.clone(),
                clock.clone(),
                SchedulerConfig::of(&config),
                scheduler_wake,
            ),
            parker: Parker::new(
                store.clone(),
                clock.clone(),
                ParkerConfig::of(&config),
                shared.health.clone(),
            ),
            elector: Elector::new(
                store.clone(),
                clock.clone(),
                ElectorConfig::of(&config),
                shared.node_id.clone(),
                shared.incarnation.clone(),
                crash.clone(),
            ),
            led: Led {
                rescuer: Rescuer::new(
                    store.clone(),
                    clock.clone(),
                    RescuerConfig::of(&config),
                    shared.beat(),
                    shared.health.clone(),
                ),
                cleaner: Cleaner::new(store.clone(), clock.clone(), CleanerConfig::of(&config)),
            },
        };
        services.spawn(maintainer.run(stop_claiming.clone()));
        tracing::info!(node = %id, queues = ?config.queues.iter().map(|q| &q.name).collect::<Vec<_>>(), kinds = ?shared.workers.kinds(), backend = store.capabilities().backend, "node started");

        tokio::select! {
            () = &mut shutdown => {}
            () = shared.replaced.cancelled() => {
                tracing::error!(node = %id, "another process took this node id over: stopping");
            }
            () = crash.cancelled() => {
                tracing::warn!(node = %id, "node aborted: nothing handed back, jobs left for the rescuer");
                return Ok(());
            }
        }

        tracing::info!(node = %id, held = shared.leases.len(), grace = ?config.shutdown_grace, "shutting down: no new claims; waiting for running jobs (signal again to stop them now)");
        stop_claiming.cancel();
        producers.close();
        producers.wait().await;
        shared.jobs.close();
        let graceful = tokio::select! {
            r = tokio::time::timeout(config.shutdown_grace, shared.jobs.wait()) => r.is_ok(),
            () = &mut force => {
                tracing::warn!(node = %id, "forced: stopping the jobs still running now");
                false
            }
        };
        if !graceful {
            tracing::warn!(node = %id, held = shared.leases.len(), "cancelling and handing back the jobs still running");
            shared.hard_stop.cancel();
            shared.jobs.wait().await;
        }
        completer_stop.cancel();
        let _ = completer_task.await;
        stop_all.cancel();
        services.close();
        services.wait().await;
        store
            .deregister_node(&DeregisterNode {
                node: id.clone(),
                incarnation: shared.incarnation.clone(),
            })
            .await?;
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
            std::future::pending(),
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

/// Subscribe to wake-ups, retried with backoff while the database is
/// unavailable. `None` when stopped meanwhile.
async fn subscribe<S: Store>(
    shared: &Shared<S>,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    crash: &CancellationToken,
) -> Result<Option<capstan_store::Notifications>, RuntimeError> {
    let mut pause = Duration::from_secs(1);
    loop {
        match crate::maintenance::bounded(
            "subscribe",
            shared.client.store.subscribe(&crate::dispatch::TOPICS),
        )
        .await
        {
            Ok(w) => return Ok(Some(w)),
            Err(e) if e.is_transient() => {
                tracing::warn!(node = %shared.node_id, error = %e, retry_in = ?pause, "cannot listen for wake-ups yet; retrying");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = &mut shutdown => return Ok(None),
            () = crash.cancelled() => return Ok(None),
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// Register the node: retried with backoff while the database is
/// unavailable; a node id that looks alive under another process is waited
/// on once, then taken over or refused. `None` when stopped meanwhile.
async fn register<S: Store>(
    shared: &Shared<S>,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    crash: &CancellationToken,
) -> Result<Option<RegisterReport>, RuntimeError> {
    let store = &shared.client.store;
    let mut takeover = None;
    let mut pause = Duration::from_secs(1);
    loop {
        let p = RegisterNode {
            beat: shared.beat(),
            takeover,
        };
        let wait = match crate::maintenance::bounded("register_node", store.register_node(&p)).await
        {
            Ok(report) => return Ok(Some(report)),
            // Seen alive once more after the wait: a live twin. Refused.
            Err(StoreError::NodeIdInUse {
                beats, incarnation, ..
            }) if takeover.is_none() && crashed_here(&incarnation) => {
                tracing::warn!(node = %shared.node_id, previous = %incarnation, "taking this node id over from a process of this host that is gone");
                takeover = Some(beats);
                continue;
            }
            Err(StoreError::NodeIdInUse {
                heartbeat_at,
                interval,
                beats,
                ..
            }) if takeover.is_none() => {
                // Wait a little longer than the other process beats: a live
                // twin beats meanwhile, a crashed predecessor does not.
                let wait = interval + interval / 2 + Duration::from_millis(200);
                tracing::warn!(node = %shared.node_id, last_beat = %heartbeat_at, ?wait, "this node id was alive a moment ago: waiting to tell a crashed predecessor from a live twin");
                takeover = Some(beats);
                wait
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(node = %shared.node_id, error = %e, retry_in = ?pause, "cannot register yet; retrying");
                let wait = pause;
                pause = (pause * 2).min(Duration::from_secs(30));
                wait
            }
            Err(e) => return Err(e.into()),
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => return Ok(None),
            () = crash.cancelled() => return Ok(None),
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
            Err(e) => Err(RuntimeError::NodeFailed {
                node: self.id.clone(),
                reason: e.to_string(),
            }),
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

/// This process among those that may share a node id: host, pid
/// namespace and pid (so another process of this host can tell whether it
/// still runs), and a random part (a pid can be reused).
fn incarnation() -> String {
    format!(
        "{}/{}/{}/{:08x}",
        host_name(),
        pid_namespace(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The pid namespace this process sees (`pid:[4026531836]`), or `-`.
fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().replace('/', ""))
        .unwrap_or_else(|_| "-".to_owned())
}

/// The incarnation is of a process of this host, in this pid namespace,
/// that no longer runs. Only where `/proc` tells; elsewhere the caller
/// waits for a missed beat instead.
fn crashed_here(incarnation: &str) -> bool {
    let parts: Vec<&str> = incarnation.split('/').collect();
    let [host, ns, pid, _] = parts.as_slice() else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    *ns != "-"
        && *host == host_name()
        && *ns == pid_namespace()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
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

#[cfg(test)]
mod tests {
    use super::{crashed_here, host_name, incarnation, pid_namespace};

    /// Node ids and incarnations carry the machine's name, as it is when it
    /// is a plain name, else cut to its plain characters (never empty).
    #[test]
    fn the_host_name_is_the_machines_in_plain_characters() {
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        let name = host_name();
        assert!(
            !name.is_empty() && name.len() <= 40 && name.chars().all(plain),
            "{name}"
        );
        let machine = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        if !machine.is_empty() && machine.len() <= 40 && machine.chars().all(plain) {
            assert_eq!(name, machine);
        }
    }

    /// A node id is taken over at once only from a process of this host and
    /// pid namespace that no longer runs; any doubt leaves it to the wait
    /// for a missed beat.
    #[test]
    fn only_a_gone_process_of_this_host_counts_as_crashed_here() {
        let (host, ns) = (host_name(), pid_namespace());
        assert!(
            ns.starts_with("pid:"),
            "on Linux the namespace is read from /proc: {ns}"
        );
        // No process has pid 2^32 − 1.
        let gone = format!("{host}/{ns}/4294967295/0000abcd");
        assert!(crashed_here(&gone));
        assert!(!crashed_here(&incarnation()), "this very process runs");
        let parent = format!(
            "{host}/{ns}/{}/0000abcd",
            std::os::unix::process::parent_id()
        );
        assert!(!crashed_here(&parent), "a running process of this host");
        for other in [
            format!("another-host/{ns}/4294967295/0000abcd"),
            format!("{host}/pid:[1]/4294967295/0000abcd"),
            format!("{host}/-/4294967295/0000abcd"),
            format!("{host}/{ns}/not-a-pid/0000abcd"),
            format!("{host}/{ns}/4294967295"),
        ] {
            assert!(!crashed_here(&other), "{other}");
        }
    }
}
