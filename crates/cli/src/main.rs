//! `capstan`: the command-line shell over the library. It parses arguments,
//! resolves configuration (flag > environment > `capstan.toml` > default),
//! opens the store (migrating it only for `migrate`, `serve` and `bench`),
//! runs one command and maps the outcome to an
//! exit code: 0 success, 2 bad input (a flag, a config file, a batch file:
//! nothing was done), 1 any other error (with one line on stderr saying what
//! failed and what to do); `jobs wait` adds 1 for a failed or cancelled job
//! and 3 for a timeout. No input ever makes it panic.

mod api;
mod args;
mod commands;
mod settings;
mod shutdown;
mod table;
mod usage;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli);
    capstan::runtime::push::install_tls();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            let mut line = String::new();
            for part in chain {
                // Skip repeats (a context that already quotes its source).
                if !line.contains(&part) {
                    if !line.is_empty() {
                        line.push_str(": ");
                    }
                    line.push_str(&part);
                }
            }
            eprintln!("error: {line}");
            ExitCode::from(usage::exit_code(&e))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = settings::Settings::load(&cli).map_err(usage::Usage::wrap)?;
    match cli.command {
        Command::Migrate => commands::migrate::run(&settings).await,
        Command::Serve(a) => commands::serve::run(&settings, a).await,
        Command::Enqueue(a) => commands::enqueue::run(&settings, a).await,
        Command::Jobs(a) => {
            commands::jobs::run(&settings, &cli.api, cli.api_token.clone(), a).await
        }
        Command::Queues(a) => commands::queues::run(&settings, a).await,
        Command::Bench(a) => commands::bench::run(&settings, a).await,
        Command::Config(a) => commands::config::run(&settings, &a),
        Command::Token(a) => commands::token::run(&a),
    }
}

fn init_tracing(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match cli.command {
        Command::Serve(_) => "info,sqlx=warn",
        _ => "warn,sqlx=error",
    };
    let filter = EnvFilter::try_from_env("CAPSTAN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only for a person at a terminal: a log file or a collector
    // gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
