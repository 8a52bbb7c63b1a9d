//! Seed 001's document pipeline, run for real: three documents sent to a
//! local fake AI API through Capstan jobs, on the real clock.
//!
//! ```text
//! cargo run -p capstan-examples --example document_pipeline [-- --database-url URL]
//! ```
//!
//! Without a URL, the jobs live in a SQLite file in a temp directory, removed
//! at the end. `doc-ok` completes at once, `doc-unauthorized` fails at once
//! (401 is not retried) and `doc-flaky` completes on its third call, after
//! waiting 2 s (after a 429) and 4 s (after a 500). `RUST_LOG=info` shows the
//! node's own logs.

use std::error::Error;
use std::time::Duration;

use capstan::{AnyStore, Client, Job, Store, Workers};
use capstan_examples::document_pipeline::{self, FakeAiApi, ProcessDocument};

/// The documents the demo enqueues.
const DOCUMENTS: [&str; 3] = ["doc-ok", "doc-flaky", "doc-unauthorized"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let Some(url) = parse_args()? else {
        let dir =
            std::env::temp_dir().join(format!("capstan-document-pipeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let result = run(format!("sqlite://{}", dir.join("capstan.db").display())).await;
        let _ = std::fs::remove_dir_all(dir);
        return result;
    };
    run(url).await
}

/// The `--database-url` given on the command line, if any. `--help` prints
/// the usage and exits.
fn parse_args() -> Result<Option<String>, Box<dyn Error>> {
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("usage: document_pipeline [--database-url postgres://…|sqlite://path]");
                std::process::exit(0);
            }
            "--database-url" => {
                url = Some(args.next().ok_or("--database-url needs a URL")?);
            }
            other => match other.strip_prefix("--database-url=") {
                Some(u) => url = Some(u.to_owned()),
                None => return Err(format!("unknown argument {other:?}; try --help").into()),
            },
        }
    }
    Ok(url)
}

/// Migrate, start the fake API, enqueue the documents, run a node until
/// every document's job has finished, and print each one.
async fn run(url: String) -> Result<(), Box<dyn Error>> {
    let store = AnyStore::connect(&url).await?;
    store.migrate().await?;
    println!("database: {url}");

    let api = FakeAiApi::start(document_pipeline::seed_scripts()).await?;
    println!("fake AI API: {}", api.url());
    let client = Client::with_config(store, document_pipeline::config())?;
    let jobs = DOCUMENTS
        .iter()
        .map(|doc| document_pipeline::job(doc, api.url()))
        .collect::<Result<_, _>>()?;
    let enqueued = client.enqueue_many(jobs).await?;

    let mut workers = Workers::empty();
    workers.register(ProcessDocument::new()?)?;
    let node = client.node(workers)?.start();
    println!(
        "processing {} documents (doc-flaky takes about 6 s)…\n",
        DOCUMENTS.len()
    );
    let mut finished = Vec::new();
    for (doc, e) in DOCUMENTS.iter().zip(&enqueued) {
        finished.push((*doc, client.wait(e.id, Duration::from_secs(60)).await?));
    }
    node.shutdown().await?;
    for (doc, job) in &finished {
        print_job(doc, job, api.calls(doc));
    }
    api.shutdown().await;
    Ok(())
}

/// One job's final state, attempts and attempt errors.
fn print_job(doc: &str, job: &Job, calls: usize) {
    println!(
        "{doc:<17} job {:<5} {:<9} after {} of {} attempts, {calls} API call(s)",
        job.id.to_string(),
        job.state.as_str(),
        job.attempt,
        job.max_attempts
    );
    for e in &job.errors {
        println!(
            "    attempt {}: {:<9} {}",
            e.attempt,
            e.class.as_str(),
            e.message
        );
    }
    if let Some(result) = &job.result {
        println!("    result: {result}");
    }
}
