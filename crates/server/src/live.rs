//! The live hub of one server: what its event streams and waits learn about
//! jobs, from every node. One subscription to the change hints
//! ([`changes::CHANGES`]) and the jobs topic per server; while anyone
//! watches, it says so on [`changes::WATCH`] (at once for the first watcher,
//! then every [`changes::WATCH_EVERY`]) so that every process sends hints,
//! and it re-reads, in one query per hint, the jobs a hint names that a
//! watcher wants (every one while a queue is watched), then hands the rows
//! to the watchers.
//!
//! Hints can be missed (a node that has not heard the latest `WATCH`, a
//! reconnect): watchers of one job also re-read it now and then, and a
//! queue's watchers are told when hints may have been lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use capstan::runtime::changes;
use capstan::store::jobs::ListJobs;
use capstan::store::{JobsHint, Notification, Received, Topic};
use capstan::{AnyStore, Client, Job, JobId, Store};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

/// What watchers receive.
#[derive(Debug, Clone)]
pub(crate) enum LiveEvent {
    /// These jobs changed; here they are now.
    Changed(Arc<Vec<Job>>),
    /// Jobs became available in these queues (`None`: any queue).
    Available(Option<Arc<Vec<String>>>),
    /// Hints may have been lost: re-read what you watch.
    Missed,
}

/// The hub.
#[derive(Debug)]
pub(crate) struct Live {
    tx: broadcast::Sender<LiveEvent>,
    /// Watchers of single jobs, by job.
    jobs: Mutex<HashMap<JobId, usize>>,
    /// Watchers of whole queues.
    queues: AtomicUsize,
    /// Every watcher.
    watchers: AtomicUsize,
    first: Notify,
}

const TOPICS: [Topic; 2] = [changes::CHANGES, Topic::JOBS];

impl Live {
    /// Start the hub's listener and announcer, until `stop`.
    pub(crate) async fn start(
        client: Client<AnyStore>,
        stop: CancellationToken,
    ) -> Result<Arc<Live>, capstan::StoreError> {
        let live = Arc::new(Live {
            tx: broadcast::channel(1024).0,
            jobs: Mutex::default(),
            queues: AtomicUsize::new(0),
            watchers: AtomicUsize::new(0),
            first: Notify::new(),
        });
        let notifications = client.store().subscribe(&TOPICS).await?;
        tokio::spawn(listen(
            live.clone(),
            client.clone(),
            notifications,
            stop.clone(),
        ));
        tokio::spawn(announce(live.clone(), client, stop));
        Ok(live)
    }

    /// Watch one job (its changes arrive on the receiver).
    pub(crate) fn watch_job(self: &Arc<Self>, id: JobId) -> Watch {
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            *jobs.entry(id).or_default() += 1;
        }
        self.watch(Watched::Job(id))
    }

    /// Watch a queue.
    pub(crate) fn watch_queue(self: &Arc<Self>) -> Watch {
        self.queues.fetch_add(1, Ordering::AcqRel);
        self.watch(Watched::Queue)
    }

    fn watch(self: &Arc<Self>, what: Watched) -> Watch {
        let rx = self.tx.subscribe();
        if self.watchers.fetch_add(1, Ordering::AcqRel) == 0 {
            self.first.notify_one();
        }
        Watch {
            live: self.clone(),
            what,
            rx,
        }
    }

    /// The ids of `hinted` that a watcher wants.
    fn wanted(&self, hinted: Vec<JobId>) -> Vec<JobId> {
        if self.queues.load(Ordering::Acquire) > 0 {
            return hinted;
        }
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        hinted
            .into_iter()
            .filter(|id| jobs.contains_key(id))
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Watched {
    Job(JobId),
    Queue,
}

/// A watcher: receives the hub's events until dropped.
#[derive(Debug)]
pub(crate) struct Watch {
    live: Arc<Live>,
    what: Watched,
    pub(crate) rx: broadcast::Receiver<LiveEvent>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        match self.what {
            Watched::Job(id) => {
                let mut jobs = self.live.jobs.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(n) = jobs.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        jobs.remove(&id);
                    }
                }
            }
            Watched::Queue => {
                self.live.queues.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.live.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn listen(
    live: Arc<Live>,
    client: Client<AnyStore>,
    mut notifications: capstan::store::Notifications,
    stop: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            r = notifications.recv() => r,
            () = stop.cancelled() => break,
        };
        let event = match received {
            Some(Received::Notification(n)) if n.topic == changes::CHANGES => {
                if live.watchers.load(Ordering::Acquire) == 0 {
                    continue;
                }
                let ids = live.wanted(changes::parse(&n.payload));
                if ids.is_empty() {
                    continue;
                }
                let limit = ids.len() as u32;
                match client
                    .list_jobs(&ListJobs {
                        ids: Some(ids),
                        limit,
                        ..ListJobs::default()
                    })
                    .await
                {
                    Ok(jobs) => LiveEvent::Changed(Arc::new(jobs)),
                    Err(e) => {
                        tracing::debug!(error = %e, "could not read the jobs a change hint named");
                        LiveEvent::Missed
                    }
                }
            }
            Some(Received::Notification(n)) => match JobsHint::parse(&n.payload) {
                JobsHint::Queues(q) => {
                    LiveEvent::Available(Some(Arc::new(q.into_iter().map(str::to_owned).collect())))
                }
                JobsHint::Any => LiveEvent::Available(None),
            },
            Some(Received::Missed) => LiveEvent::Missed,
            None => break,
        };
        let _ = live.tx.send(event);
    }
}

/// While anyone watches, say so: at once, then every `WATCH_EVERY`.
async fn announce(live: Arc<Live>, client: Client<AnyStore>, stop: CancellationToken) {
    loop {
        if live.watchers.load(Ordering::Acquire) == 0 {
            tokio::select! {
                () = live.first.notified() => {}
                () = stop.cancelled() => return,
            }
            continue;
        }
        if let Err(e) = client
            .store()
            .notify(Notification::new(changes::WATCH, ""))
            .await
        {
            tracing::debug!(error = %e, "could not announce live watchers");
        }
        tokio::select! {
            () = tokio::time::sleep(changes::WATCH_EVERY) => {}
            () = live.first.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}
