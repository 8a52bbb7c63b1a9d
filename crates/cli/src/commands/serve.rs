//! `capstan serve`: run a node and the HTTP API until SIGINT or SIGTERM,
//! then stop gracefully: the node stops claiming and lets its jobs finish
//! (a second signal stops them at once), the API stops accepting, lets its
//! requests in flight finish and ends waiting claims. A database that does
//! not answer yet is waited for, with backoff, rather than a reason to exit.
//!
//! `--no-worker` runs no jobs (an API and maintenance node); `--no-http`
//! serves no API (a worker node).

use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use capstan::{AnyStore, Client, StoreError, Workers};
use tokio_util::sync::CancellationToken;

use crate::args::ServeArgs;
use crate::settings::Settings;
use crate::shutdown::Signals;
use crate::usage::Usage;

pub(crate) async fn run(settings: &Settings, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = settings.config.clone();
    // Push queues: served here, every job of them POSTed to their URL.
    let mut workers = Workers::new();
    for (name, push) in &settings.queues {
        workers.push(name, push.clone())?;
        match config.queues.iter_mut().find(|q| q.name == *name) {
            Some(q) => q.concurrency = push.concurrency,
            None => config
                .queues
                .push(capstan::QueueConfig::new(name.clone()).with_concurrency(push.concurrency)),
        }
    }
    if !args.no_http {
        settings
            .server
            .validate()
            .map_err(|e| Usage::wrap(anyhow::anyhow!(e)))?;
    }
    let signals = Signals::listen();
    // Bind first: a port in use is an error now, not after migrations.
    let listener = if args.no_http {
        None
    } else {
        let addr = settings.server.listen;
        Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr}: pass --listen ADDR (or server.listen), or stop the process that holds it")
        })?)
    };
    let Some(store) = open_with_retry(settings, !args.no_migrate, signals.nth(1)).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    let client = Client::with_config(store, config).context("cannot start the node")?;
    let node = if args.no_worker {
        client.maintenance_node()
    } else {
        client.node(workers)?
    };
    let stop = CancellationToken::new();
    let http = match listener {
        None => None,
        Some(listener) => {
            let state = capstan_server::ServerState::new(
                client.clone(),
                settings.server.clone(),
                stop.clone(),
            )
            .await
            .context("cannot start the HTTP API")?;
            let addr = listener.local_addr()?;
            let auth = if settings.server.tokens.is_empty() {
                "open (loopback, no tokens)"
            } else {
                "bearer tokens"
            };
            tracing::info!(%addr, auth, "HTTP API listening");
            Some(tokio::spawn(capstan_server::serve(listener, state)))
        }
    };
    tracing::info!(node = %node.id(), database = %capstan::redact_url(&settings.url), worker = !args.no_worker, "serving; stop with ctrl-c or SIGTERM");
    let first = signals.nth(1);
    let stopping = stop.clone();
    let ran = node
        .run_with_force(
            async move {
                first.await;
                stopping.cancel();
            },
            signals.nth(2),
        )
        .await;
    // The node may also have ended on its own (its id taken over): the API
    // goes with it.
    stop.cancel();
    if let Some(http) = http {
        match http.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP API stopped with an error"),
            Err(e) => tracing::error!(error = %e, "the HTTP API task failed"),
        }
    }
    ran?;
    Ok(ExitCode::SUCCESS)
}

/// Open the store; while the database does not answer (it is starting,
/// failing over), log the cause and try again with backoff (1 s growing to
/// 30 s). `None` when stopped meanwhile.
async fn open_with_retry(
    settings: &Settings,
    migrate: bool,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Option<AnyStore>> {
    tokio::pin!(stop);
    let mut pause = Duration::from_secs(1);
    loop {
        let opened = if migrate {
            settings.open_and_migrate().await
        } else {
            settings.open().await
        };
        match opened {
            Ok(store) => return Ok(Some(store)),
            Err(e)
                if e.downcast_ref::<StoreError>()
                    .is_some_and(StoreError::is_transient) =>
            {
                tracing::warn!(error = %e, retry_in = ?pause, "the database does not answer yet; retrying");
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = &mut stop => return Ok(None),
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}
