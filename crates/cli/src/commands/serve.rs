//! `capstan serve`: run a node until SIGINT or SIGTERM, then stop gracefully.

use std::process::ExitCode;

use anyhow::Context;
use capstan::{Client, NodeId, QueueConfig, Workers};

use crate::args::ServeArgs;
use crate::settings::Settings;
use crate::shutdown;

pub(crate) async fn run(settings: &Settings, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = settings.config.clone();
    if let Some(names) = args.queues {
        let per_queue = |n: &str| {
            config
                .queues
                .iter()
                .find(|q| q.name == n)
                .map_or(QueueConfig::DEFAULT_CONCURRENCY, |q| q.concurrency)
        };
        config.queues = names
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| QueueConfig::new(n.clone()).with_concurrency(per_queue(n)))
            .collect();
    }
    if let Some(n) = args.concurrency {
        for q in &mut config.queues {
            q.concurrency = n;
        }
    }
    if let Some(id) = args.node_id {
        config.node_id = Some(NodeId(id));
    }
    let store = settings.open().await?;
    let client = Client::with_config(store, config).context("cannot start the node")?;
    let node = client.node(Workers::new())?;
    tracing::info!(node = %node.id(), database = %capstan::postgres::redact_url(&settings.url), "serving; stop with ctrl-c or SIGTERM");
    node.run(shutdown::signal()).await?;
    Ok(ExitCode::SUCCESS)
}
