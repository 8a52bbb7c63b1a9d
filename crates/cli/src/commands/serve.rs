//! `capstan serve`: run a node until SIGINT or SIGTERM, then stop gracefully
//! (a second signal stops the running jobs at once). A database that does
//! not answer yet is waited for, with backoff, rather than a reason to exit.

use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use capstan::{AnyStore, Client, StoreError, Workers};

use crate::args::ServeArgs;
use crate::settings::Settings;
use crate::shutdown::Signals;

pub(crate) async fn run(settings: &Settings, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = settings.config.clone();
    let signals = Signals::listen();
    let Some(store) = open_with_retry(settings, !args.no_migrate, signals.nth(1)).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    let client = Client::with_config(store, config).context("cannot start the node")?;
    let node = client.node(Workers::new())?;
    tracing::info!(node = %node.id(), database = %capstan::redact_url(&settings.url), "serving; stop with ctrl-c or SIGTERM");
    node.run_with_force(signals.nth(1), signals.nth(2)).await?;
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
