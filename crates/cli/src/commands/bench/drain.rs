//! The drain phase, on one node or many, and the idle cost of those nodes.
//!
//! With `--nodes N` each node has a store of its own (its own connection
//! pools and, on PostgreSQL, its own LISTEN connection), as separate
//! processes would, and the queue's concurrency is shared out between them
//! so that the total is the same as one node's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use capstan::{AnyStore, Client, Config, QueueConfig, Store, Workers};
use serde_json::Value;
use tokio::sync::Notify;

use super::usage::{Sample, Usage};
use crate::settings::Settings;

/// The clients the drain's nodes run on: the bench's own, then one per
/// further node, each on a store of its own.
pub(super) struct Drainers {
    clients: Vec<Client<AnyStore>>,
}

impl Drainers {
    /// `nodes` clients for `queue`, sharing `concurrency`; the first on
    /// `store`.
    pub(super) async fn connect(
        settings: &Settings,
        store: &AnyStore,
        base: &Config,
        queue: &str,
        concurrency: usize,
        nodes: usize,
    ) -> anyhow::Result<Drainers> {
        let mut clients = Vec::with_capacity(nodes);
        for k in 0..nodes {
            // Node k's share: the concurrency split as evenly as it goes, at least 1.
            let share = (concurrency / nodes + usize::from(k < concurrency % nodes)).max(1);
            let mut config = base.clone();
            config.queues = vec![QueueConfig::new(queue).with_concurrency(share)];
            config.node_id = None;
            let store = if k == 0 {
                store.clone()
            } else {
                AnyStore::connect_with(&settings.url, &settings.database)
                    .await
                    .with_context(|| format!("connecting bench node {}", k + 1))?
            };
            clients.push(Client::with_config(store, config).context("bench configuration")?);
        }
        Ok(Drainers { clients })
    }

    /// Run `jobs` no-op jobs (already enqueued) on every node at once:
    /// the rate, from the nodes' start until every handler ran and every
    /// completion is written, and what it cost.
    pub(super) async fn drain(
        &self,
        jobs: usize,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<(f64, Usage)> {
        let ran = Arc::new(AtomicUsize::new(0));
        let all_ran = Arc::new(Notify::new());
        let first = self.first();
        let before = Sample::take(first.store()).await;
        let t = Instant::now();
        let mut nodes = Vec::with_capacity(self.clients.len());
        for client in &self.clients {
            let mut workers = Workers::empty();
            let (ran, all_ran, bar) = (ran.clone(), all_ran.clone(), bar.clone());
            workers.register_fn("capstan.noop", move |_ctx, args: Value| {
                let n = ran.fetch_add(1, Ordering::Relaxed) + 1;
                bar.inc(1);
                if n == jobs {
                    all_ran.notify_one();
                }
                async move { Ok(args) }
            })?;
            nodes.push(client.node(workers)?.start());
        }
        all_ran.notified().await;
        for node in nodes {
            node.shutdown().await?; // writes every completion still in flight
        }
        let rate = super::per_second(jobs, t.elapsed());
        Ok((rate, Sample::take(first.store()).await.since(&before, jobs)))
    }

    /// Run the nodes with nothing to do for `idle` (after a second to
    /// settle): the statements per second the database ran meanwhile, when
    /// it can say (PostgreSQL with pg_stat_statements).
    pub(super) async fn idle(&self, idle: Duration) -> anyhow::Result<Option<f64>> {
        let mut nodes = Vec::with_capacity(self.clients.len());
        for client in &self.clients {
            let mut workers = Workers::empty();
            workers.register_fn("capstan.noop", |_ctx, args: Value| async move { Ok(args) })?;
            nodes.push(client.node(workers)?.start());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = Sample::take(self.first().store()).await;
        let t = Instant::now();
        tokio::time::sleep(idle).await;
        let after = Sample::take(self.first().store()).await;
        let elapsed = t.elapsed();
        for node in nodes {
            node.shutdown().await?;
        }
        Ok(after
            .statements_since(&before)
            .map(|n| n as f64 / elapsed.as_secs_f64()))
    }

    /// Close the further nodes' stores (the first is the bench's own).
    pub(super) async fn close(self) {
        for client in self.clients.into_iter().skip(1) {
            client.store().close().await;
        }
    }

    fn first(&self) -> &Client<AnyStore> {
        &self.clients[0]
    }
}
