//! The command line, as clap types. Values are parsed and bounded here (JSON,
//! durations, times, names, counts), so a malformed or out-of-range one is a
//! usage error (exit 2) that names its flag, before anything runs.

use std::path::PathBuf;
use std::time::Duration;

use capstan::JobState;
use capstan::core::limits;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

/// Reliable background work on SQLite or PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "capstan", version, about)]
pub(crate) struct Cli {
    /// Database URL: postgres://… or sqlite://path. Default:
    /// $CAPSTAN_DATABASE_URL, else `url` under [database] in capstan.toml,
    /// else sqlite://capstan.db.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) database_url: Option<String>,
    /// Configuration file (default: ./capstan.toml when it exists).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// A Capstan server's HTTP API, e.g. http://127.0.0.1:7400: `jobs wait`
    /// long-polls it, `jobs watch` streams from it (default for `watch`:
    /// the address of server.listen).
    #[arg(long, global = true, value_name = "URL", env = "CAPSTAN_API_URL")]
    pub(crate) api: Option<String>,
    /// The bearer token for --api.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "CAPSTAN_API_TOKEN",
        hide_env_values = true
    )]
    pub(crate) api_token: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or upgrade the schema (idempotent).
    Migrate,
    /// Run a node and the HTTP API until SIGINT/SIGTERM, then stop gracefully.
    Serve(ServeArgs),
    /// Enqueue a job (or, with --batch, many from a JSON-lines file).
    Enqueue(EnqueueArgs),
    /// Inspect and operate on jobs.
    Jobs(JobsArgs),
    /// Jobs per queue and state.
    Queues(QueuesArgs),
    /// Measure enqueue, drain and pickup on the configured database.
    Bench(BenchArgs),
    /// Print the effective configuration and where each value came from.
    Config(ConfigArgs),
    /// Make a new API token: prints the token (give it to the client) and
    /// the `[[server.tokens]]` entry holding its hash (put it in capstan.toml).
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// What the token may do: admin, worker, enqueue or read.
    #[arg(long, default_value = "worker", value_parser = ["admin", "worker", "enqueue", "read"])]
    pub(crate) role: String,
    /// A name for it (in logs and errors).
    #[arg(long, default_value = "worker")]
    pub(crate) name: String,
    /// For a worker token: the queues it may claim from (default: all).
    #[arg(long, value_delimiter = ',', value_name = "Q,…")]
    pub(crate) queues: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// Print JSON: `{"key": {"value": …, "source": "…"}}`.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Queues to serve, comma-separated (default: from config, else `default`).
    #[arg(long, value_delimiter = ',', value_name = "Q,…")]
    pub(crate) queues: Option<Vec<String>>,
    /// Jobs run at once per queue on this node (1 to 100000).
    #[arg(long, value_name = "N", value_parser = concurrency)]
    pub(crate) concurrency: Option<usize>,
    /// This node's id; must be unique among live nodes (default: host name + random).
    #[arg(long, value_name = "ID")]
    pub(crate) node_id: Option<String>,
    /// Do not apply pending migrations: refuse to start on a database that
    /// `capstan migrate` has not brought to this version.
    #[arg(long)]
    pub(crate) no_migrate: bool,
    /// Serve the HTTP API on this address (default 127.0.0.1:7400; another
    /// interface needs `server.tokens`).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<String>,
    /// Run no jobs here: serve the API and take a share of maintenance
    /// (pull workers and other nodes run the jobs).
    #[arg(long)]
    pub(crate) no_worker: bool,
    /// Do not serve the HTTP API (a worker node only).
    #[arg(long, conflicts_with_all = ["listen", "no_worker"])]
    pub(crate) no_http: bool,
}

#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// The job's kind (not with --batch).
    #[arg(required_unless_present = "batch", conflicts_with = "batch", value_parser = kind)]
    pub(crate) kind: Option<String>,
    /// The job's args, as JSON.
    #[arg(long, value_parser = parse_json, value_name = "JSON")]
    pub(crate) args: Option<serde_json::Value>,
    /// Queue (default `default`): 1 to 100 characters from A-Z a-z 0-9 _ . : -
    #[arg(long, value_name = "Q", value_parser = queue)]
    pub(crate) queue: Option<String>,
    /// Priority, -32768 to 32767: higher runs first (default 0).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(crate) priority: Option<i16>,
    /// Run no earlier than this long from now (e.g. 30s, 5m; at most 100 years).
    #[arg(long, value_parser = delay, conflicts_with = "run_at", value_name = "DUR")]
    pub(crate) delay: Option<Duration>,
    /// Run no earlier than this time (RFC 3339, from 1970 to 100 years ahead).
    #[arg(long, value_parser = parse_time, value_name = "RFC3339")]
    pub(crate) run_at: Option<DateTime<Utc>>,
    /// At most one job per key while retained: a known key returns the existing job.
    #[arg(long, value_name = "K", value_parser = key)]
    pub(crate) idempotency_key: Option<String>,
    /// At most one not-yet-started job per key: a second enqueue coalesces into it.
    #[arg(long, value_name = "K", value_parser = key)]
    pub(crate) dedupe_key: Option<String>,
    /// Attempts allowed, 1 to 1000 (default: the retry policy's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub(crate) max_attempts: Option<i32>,
    /// Per-attempt timeout (default: 5m, or the config's; at most 365 days).
    #[arg(long, value_parser = timeout, value_name = "DUR")]
    pub(crate) timeout: Option<Duration>,
    /// A tag; repeat for several.
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// Enqueue every job of a JSON-lines file (`-` = stdin), all or nothing.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["args", "queue", "priority", "delay", "run_at", "idempotency_key", "dedupe_key", "max_attempts", "timeout", "tags"])]
    pub(crate) batch: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JobsArgs {
    #[command(subcommand)]
    pub(crate) command: JobsCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this state.
        #[arg(long, value_parser = parse_state)]
        state: Option<JobState>,
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its attempt history.
    Show {
        /// The job id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job (a running job's handler is told to stop).
    Cancel {
        /// The job id.
        id: i64,
    },
    /// Run a failed, cancelled or waiting job again now.
    Retry {
        /// The job id.
        id: i64,
    },
    /// Print a job's changes as they happen (or a queue's, with --queue),
    /// from a server's event stream: exit 0 when the job completed, 1 when
    /// it failed or was cancelled. Needs a running `capstan serve`.
    Watch {
        /// The job id (not with --queue).
        #[arg(required_unless_present = "queue", conflicts_with = "queue")]
        id: Option<i64>,
        /// Every job of this queue, until ctrl-c.
        #[arg(long)]
        queue: Option<String>,
        /// Print each event as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Wait until a job finishes: exit 0 completed, 1 failed or cancelled, 3 timeout.
    Wait {
        /// The job id.
        id: i64,
        /// Give up after this long (default: wait as long as it takes).
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// Print the job as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct QueuesArgs {
    /// Print a JSON array.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Jobs to bulk-enqueue and drain (at least 1).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) jobs: u64,
    /// Handlers run at once, 1 to 100000 (default: the queue default, 100).
    #[arg(long, value_parser = concurrency)]
    pub(crate) concurrency: Option<usize>,
    /// Drain with this many nodes, each with its own connections to the
    /// database, sharing --concurrency between them (1 to 256).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) nodes: u16,
    /// After the drain, keep its nodes running idle this long and report the
    /// statements per second the database ran meanwhile (PostgreSQL, with
    /// pg_stat_statements installed), e.g. `--idle 10s`.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) idle: Option<Duration>,
    /// Keep the drained jobs (completed) instead of deleting the bench queue:
    /// run once with a large --jobs and --keep to measure over a big retained history.
    #[arg(long)]
    pub(crate) keep: bool,
    /// Measure the HTTP API instead: pull workers (a Rust loop, the
    /// TypeScript and the Python client), a push queue, and event streams.
    #[arg(long, conflicts_with_all = ["nodes", "idle", "keep"])]
    pub(crate) http: bool,
    /// With --http: event streams held open at once.
    #[arg(long, default_value_t = 1000, requires = "http")]
    pub(crate) streams: usize,
    /// With --http: the repository's examples/ (the client workers).
    #[arg(long, default_value = "examples", requires = "http")]
    pub(crate) examples: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not valid JSON ({e})"))
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}: use a duration like 500ms, 30s, 5m or 1h"))
}

fn bounded(s: &str, max: Duration, bound: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > max {
        return Err(format!("{s} is too long: {bound}"));
    }
    Ok(d)
}

fn delay(s: &str) -> Result<Duration, String> {
    bounded(s, limits::MAX_DELAY, "a delay is at most 100 years")
}

fn timeout(s: &str) -> Result<Duration, String> {
    let d = bounded(s, limits::MAX_TIMEOUT, "a timeout is at most 365 days")?;
    if d.is_zero() {
        return Err("a timeout must be more than zero".into());
    }
    Ok(d)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: use RFC 3339, e.g. 2026-11-23T12:00:00Z"))?;
    // The same bounds as the job's own validation, said here with the flag.
    capstan::NewJob::new("k", serde_json::Value::Null)
        .with_run_at(t)
        .validate()
        .map_err(|_| "give a time between 1970-01-01 and 100 years from now".to_owned())?;
    Ok(t)
}

fn kind(s: &str) -> Result<String, String> {
    if s.is_empty() || s.chars().count() > 200 {
        return Err("a kind is 1 to 200 characters".into());
    }
    Ok(s.to_owned())
}

fn queue(s: &str) -> Result<String, String> {
    capstan::core::validate_queue(s)
        .map(|()| s.to_owned())
        .map_err(|_| "use 1 to 100 characters from A-Z a-z 0-9 _ . : -".into())
}

fn key(s: &str) -> Result<String, String> {
    if s.is_empty() || s.chars().count() > 500 {
        return Err("a key is 1 to 500 characters".into());
    }
    Ok(s.to_owned())
}

fn concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err("give a number of jobs from 1 to 100000".into()),
    }
}

fn parse_state(s: &str) -> Result<JobState, String> {
    s.parse()
        .map_err(|e: capstan::core::ValidationError| e.to_string())
}
