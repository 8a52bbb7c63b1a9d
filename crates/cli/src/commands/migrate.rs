//! `capstan migrate`: create or upgrade the schema; re-running is a no-op.

use std::process::ExitCode;

use crate::settings::Settings;

pub(crate) async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = settings.open_and_migrate().await?;
    println!(
        "migrated {} database {}",
        capstan::Store::capabilities(&store).backend,
        capstan::redact_url(&settings.url)
    );
    capstan::Store::close(&store).await;
    Ok(ExitCode::SUCCESS)
}
