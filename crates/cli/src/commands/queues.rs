//! `capstan queues`: jobs per queue and state.

use std::process::ExitCode;

use capstan::QueueStore;

use crate::args::QueuesArgs;
use crate::settings::Settings;
use crate::table;

pub(crate) async fn run(settings: &Settings, args: QueuesArgs) -> anyhow::Result<ExitCode> {
    let store = settings.open().await?;
    let counts = store.queue_counts().await?;
    if args.json {
        println!("{}", serde_json::to_string(&counts)?);
    } else if counts.is_empty() {
        println!("no jobs");
    } else {
        if counts.iter().any(|c| c.unhandled > 0) {
            eprintln!(
                "note: NO HANDLER counts available jobs that no live node serving their queue has a handler for; they wait for one (`capstan jobs list --state available` shows their kinds)"
            );
        }
        let rows: Vec<Vec<String>> = counts
            .iter()
            .map(|c| {
                [
                    c.scheduled,
                    c.available,
                    c.unhandled,
                    c.running,
                    c.retryable,
                    c.completed,
                    c.failed,
                    c.cancelled,
                ]
                .iter()
                .map(u64::to_string)
                .fold(vec![c.queue.clone()], |mut row, n| {
                    row.push(n);
                    row
                })
            })
            .collect();
        table::print(
            &[
                "QUEUE",
                "SCHEDULED",
                "AVAILABLE",
                "NO HANDLER",
                "RUNNING",
                "RETRYABLE",
                "COMPLETED",
                "FAILED",
                "CANCELLED",
            ],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}
