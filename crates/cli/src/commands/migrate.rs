//! `capstan migrate`: create or upgrade the schema; re-running is a no-op.

use std::process::ExitCode;

use crate::settings::Settings;

pub(crate) async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = settings.open().await?;
    println!(
        "migrated {} database {}",
        capstan::Store::capabilities(&store).backend,
        redact(&settings.url)
    );
    capstan::Store::close(&store).await;
    Ok(ExitCode::SUCCESS)
}

/// The URL with any password hidden.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}
