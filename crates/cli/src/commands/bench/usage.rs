//! What a bench phase cost: CPU time of this process (on Linux; on SQLite
//! it includes the database) and of a PostgreSQL server running on this
//! machine, and the statements that server ran.
//!
//! The server's CPU is the sum over its processes alive at the end of the
//! phase (read from `/proc`, so only on Linux and when the server is on this
//! machine); a process that exited during the phase is not counted.
//! Statements come from `pg_stat_statements`, when it is installed.

use std::collections::HashMap;
use std::time::Duration;

use capstan::AnyStore;

/// The counters at one moment.
#[derive(Debug)]
pub(super) struct Sample {
    process: Option<Duration>,
    server: Option<Server>,
}

#[derive(Debug)]
struct Server {
    cpu: HashMap<u32, Duration>,
    statements: Option<u64>,
}

/// What a phase cost, per job.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Usage {
    /// CPU milliseconds of this process per 1,000 jobs.
    pub(super) cpu_ms_per_1000: Option<f64>,
    /// CPU milliseconds of the database server per 1,000 jobs.
    pub(super) db_cpu_ms_per_1000: Option<f64>,
    /// Statements the server ran per job (one round trip each).
    pub(super) db_statements_per_job: Option<f64>,
}

impl Sample {
    /// Read the counters now. Never fails: what cannot be read is `None`.
    pub(super) async fn take(store: &AnyStore) -> Sample {
        let server = match store {
            AnyStore::Postgres(pg) => match pg.server_activity().await {
                Ok(activity) => Some(Server {
                    cpu: activity
                        .pids
                        .iter()
                        .filter_map(|&pid| Some((pid, server_process_cpu(pid)?)))
                        .collect(),
                    statements: activity.statements,
                }),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the server's activity");
                    None
                }
            },
            AnyStore::Sqlite(_) => None,
        };
        Sample {
            process: process_cpu(),
            server,
        }
    }

    /// What happened between `before` and this sample, for `jobs` jobs.
    pub(super) fn since(&self, before: &Sample, jobs: usize) -> Usage {
        let per_1000 = |d: Duration| d.as_secs_f64() * 1000.0 * 1000.0 / jobs.max(1) as f64;
        let process = match (before.process, self.process) {
            (Some(b), Some(a)) => Some(per_1000(a.saturating_sub(b))),
            _ => None,
        };
        let (db_cpu, statements) = match (&before.server, &self.server) {
            (Some(b), Some(a)) => {
                let cpu = (!a.cpu.is_empty()).then(|| {
                    let spent: Duration = a
                        .cpu
                        .iter()
                        .map(|(pid, t)| {
                            t.saturating_sub(b.cpu.get(pid).copied().unwrap_or_default())
                        })
                        .sum();
                    per_1000(spent)
                });
                let statements = self
                    .statements_since(before)
                    .map(|n| n as f64 / jobs.max(1) as f64);
                (cpu, statements)
            }
            _ => (None, None),
        };
        Usage {
            cpu_ms_per_1000: process,
            db_cpu_ms_per_1000: db_cpu,
            db_statements_per_job: statements,
        }
    }
}

impl Sample {
    /// The statements the server ran between `before` and this sample
    /// (the samples' own reads taken off), when it can say.
    pub(super) fn statements_since(&self, before: &Sample) -> Option<u64> {
        let b = before.server.as_ref()?.statements?;
        let a = self.server.as_ref()?.statements?;
        Some(a.saturating_sub(b).saturating_sub(READ_STATEMENTS))
    }
}

/// Statements the samples themselves add to the count between two reads of
/// it: the earlier sample's count read (counted once it ends), then the
/// later one's process and extension reads.
const READ_STATEMENTS: u64 = 3;

/// User + system CPU time of this process (all its threads).
fn process_cpu() -> Option<Duration> {
    proc_cpu("self")
}

/// User + system CPU time of a PostgreSQL process on this machine; `None`
/// when there is no such process here (the server runs elsewhere) or it is
/// not a `postgres` process.
fn server_process_cpu(pid: u32) -> Option<Duration> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    if comm.trim_end() != "postgres" {
        return None;
    }
    proc_cpu(&pid.to_string())
}

/// User + system CPU time from `/proc/<pid>/stat` (Linux). Its unit is
/// `USER_HZ`, which Linux fixes at 100 per second for user space on every
/// architecture it runs Capstan's targets on, so the figures are good to
/// 10 ms — enough for phases that take a second or more.
fn proc_cpu(pid: &str) -> Option<Duration> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, in parentheses):
    // state is the first, utime the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}
