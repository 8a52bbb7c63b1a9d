//! `capstan jobs list|show|cancel|retry|wait|watch`. `watch` reads a
//! server's event stream; `wait` long-polls the server given by `--api`,
//! else polls the database.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use capstan::store::jobs::{CancelOutcome, ListJobs};
use capstan::{Job, JobId, JobState, RuntimeError};

use crate::api::{Api, Waited};
use crate::args::{JobsArgs, JobsCommand};
use crate::settings::Settings;
use crate::table;

pub(crate) async fn run(
    settings: &Settings,
    api: &Option<String>,
    api_token: Option<String>,
    args: JobsArgs,
) -> anyhow::Result<ExitCode> {
    if let JobsCommand::Watch { id, queue, json } = &args.command {
        let base = api
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.server.listen));
        let api = Api::new(&base, api_token)?;
        return match (id, queue) {
            (Some(id), _) => {
                let job = api
                    .watch(&format!("/v1/jobs/{id}/events"), *json, true)
                    .await?;
                Ok(exit_of(job.as_ref().and_then(|j| j["state"].as_str())))
            }
            (None, Some(q)) => {
                api.watch(&format!("/v1/queues/{q}/events"), *json, false)
                    .await?;
                Ok(ExitCode::SUCCESS)
            }
            (None, None) => Ok(ExitCode::from(2)),
        };
    }
    if let (JobsCommand::Wait { id, timeout, json }, Some(base)) = (&args.command, api) {
        let api = Api::new(base, api_token)?;
        let limit = timeout.unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
        return match api.wait(*id, limit).await? {
            Waited::Finished(job) => {
                if *json {
                    println!("{job}");
                } else {
                    println!("job {} {}", job["id"], job["state"].as_str().unwrap_or("?"));
                }
                Ok(exit_of(job["state"].as_str()))
            }
            Waited::TimedOut(job) => {
                eprintln!(
                    "error: job {id} is still {} after {}; wait longer with --timeout",
                    job["state"].as_str().unwrap_or("?"),
                    humantime::format_duration(limit)
                );
                Ok(ExitCode::from(3))
            }
        };
    }
    let client = settings.client().await?;
    match args.command {
        JobsCommand::List {
            queue,
            state,
            kind,
            limit,
            json,
        } => {
            let jobs = client
                .list_jobs(&ListJobs {
                    queue,
                    state,
                    kind,
                    limit,
                    ..ListJobs::default()
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string(&jobs)?);
            } else {
                let rows: Vec<Vec<String>> = jobs
                    .iter()
                    .map(|j| {
                        vec![
                            j.id.to_string(),
                            j.queue.clone(),
                            j.kind.clone(),
                            state_text(j),
                            format!("{}/{}", j.attempt, j.max_attempts),
                            j.run_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        ]
                    })
                    .collect();
                table::print(
                    &["ID", "QUEUE", "KIND", "STATE", "ATTEMPT", "RUN AT"],
                    &rows,
                );
            }
        }
        JobsCommand::Show { id, json } => {
            let job = client
                .job(JobId(id))
                .await?
                .with_context(|| format!("job {id} not found (it never existed or was deleted after its retention period)"))?;
            if json {
                println!("{}", serde_json::to_string(&job)?);
            } else {
                show(&job);
            }
        }
        JobsCommand::Cancel { id } => match client.cancel(JobId(id)).await? {
            CancelOutcome::Cancelled(j) => println!("cancelled job {} ({})", j.id, j.kind),
            CancelOutcome::Requested(j) => println!(
                "job {} is running on {}: asked it to stop",
                j.id,
                j.node_id.map(|n| n.0).unwrap_or_default()
            ),
        },
        JobsCommand::Retry { id } => {
            let j = client.retry(JobId(id)).await?;
            println!(
                "job {} is {} again (attempt {}/{})",
                j.id, j.state, j.attempt, j.max_attempts
            );
        }
        JobsCommand::Watch { .. } => return Ok(ExitCode::from(2)), // (handled above)
        JobsCommand::Wait { id, timeout, json } => {
            let limit = timeout.unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
            // Waiting on a job no node can run would never end: say so now.
            let unhandled = match client.job(JobId(id)).await? {
                Some(j) if !j.state.is_finished() => {
                    !crate::commands::enqueue::warn_if_unhandled(&client, [(&j.queue, &j.kind)])
                        .await?
                }
                _ => false,
            };
            return match client.wait(JobId(id), limit).await {
                Ok(job) => {
                    if json {
                        println!("{}", serde_json::to_string(&job)?);
                    } else {
                        println!("job {} {}", job.id, job.state);
                    }
                    Ok(if job.state == JobState::Completed {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(RuntimeError::WaitTimeout {
                    job_id,
                    waited,
                    state,
                }) => {
                    let hint = if unhandled {
                        "no live node has a handler for its kind: start one"
                    } else {
                        "wait longer with --timeout"
                    };
                    eprintln!(
                        "error: job {job_id} is still {state} after {}; {hint}",
                        humantime::format_duration(waited)
                    );
                    Ok(ExitCode::from(3))
                }
                Err(e) => Err(e.into()),
            };
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// 0 for a completed job, 1 for a failed or cancelled one (or none).
fn exit_of(state: Option<&str>) -> ExitCode {
    if state == Some("completed") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The state as shown in tables: an available job no live node can run says so.
fn state_text(j: &Job) -> String {
    if j.unhandled {
        format!("{} (no handler)", j.state)
    } else {
        j.state.to_string()
    }
}

fn show(j: &Job) {
    let opt = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
    };
    println!(
        "job {}  {}  queue {}  {}",
        j.id,
        j.kind,
        j.queue,
        state_text(j)
    );
    println!("  attempt       {}/{}", j.attempt, j.max_attempts);
    println!("  priority      {}", j.priority);
    println!("  args          {}", j.args);
    println!("  run at        {}", j.run_at.to_rfc3339());
    println!("  created at    {}", j.created_at.to_rfc3339());
    println!("  attempted at  {}", opt(j.attempted_at));
    println!("  finished at   {}", opt(j.finished_at));
    if let Some(n) = &j.node_id {
        println!(
            "  held by       {n} (lease {}, until {})",
            j.lease_token.as_ref().map(|t| t.as_str()).unwrap_or("-"),
            opt(j.lease_expires_at)
        );
    }
    if let Some(k) = &j.idempotency_key {
        println!("  idempotency   {k}");
    }
    if let Some(k) = &j.dedupe_key {
        println!("  dedupe        {k}");
    }
    if !j.tags.is_empty() {
        println!("  tags          {}", j.tags.join(", "));
    }
    if let Some(r) = &j.result {
        println!("  result        {r}");
    }
    if let Some(p) = &j.progress {
        println!("  progress      {p}");
    }
    if !j.errors.is_empty() {
        println!("  errors:");
        for e in &j.errors {
            println!(
                "    #{} {} [{}] {}",
                e.attempt,
                e.at.to_rfc3339(),
                e.class,
                e.message
            );
        }
    }
}
