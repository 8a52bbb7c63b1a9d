//! `/v1/jobs`: enqueue (one job or a batch, all or nothing), list with a
//! keyset cursor, read one with its attempt history, cancel, retry, and
//! wait for one to finish.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use capstan::store::jobs::{CancelOutcome, ListJobs};
use capstan::{Job, JobId, JobState, NewJob};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::ServerState;
use crate::auth::{Access, Need};
use crate::extract::{Json, Path, Query};
use crate::problem::Problem;
use axum::extract::State;

/// A job, as the API shows it (its lease token is shown only to the worker
/// whose claim it is).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Which handler runs it.
    pub kind: String,
    /// The handler's input.
    pub args: Value,
    /// Higher runs first.
    pub priority: i16,
    /// `scheduled`, `available`, `running`, `retryable`, `completed`,
    /// `failed` or `cancelled`.
    #[schema(example = "available")]
    pub state: String,
    /// Attempts started so far.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it may run.
    pub run_at: DateTime<Utc>,
    /// Its own timeout per attempt, in milliseconds.
    pub timeout_ms: Option<i64>,
    /// Every attempt's error, oldest first: the attempt history.
    pub errors: Vec<AttemptView>,
    /// What the handler returned, once completed.
    pub result: Option<Value>,
    /// The last progress reported.
    pub progress: Option<Value>,
    /// Labels.
    pub tags: Vec<String>,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// Its dedupe key.
    pub dedupe_key: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its last attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub finished_at: Option<DateTime<Utc>>,
    /// The node or pull worker holding it while it runs.
    pub node_id: Option<String>,
    /// While running: when its lease ends unless its holder beats.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// A user asked to cancel it while it ran.
    pub cancel_requested: bool,
    /// No live node or worker serving its queue takes its kind.
    pub unhandled: bool,
}

/// One attempt's error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// The attempt (1-based).
    pub attempt: i32,
    /// `retryable`, `permanent`, `timeout`, `panicked`, `cancelled`, `rescued`.
    pub class: String,
    /// What went wrong.
    pub message: String,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        JobView {
            id: j.id.0,
            queue: j.queue,
            kind: j.kind,
            args: j.args,
            priority: j.priority,
            state: j.state.as_str().to_owned(),
            attempt: j.attempt,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            timeout_ms: j.timeout_ms,
            errors: j
                .errors
                .into_iter()
                .map(|e| AttemptView {
                    at: e.at,
                    attempt: e.attempt,
                    class: e.class.as_str().to_owned(),
                    message: e.message,
                })
                .collect(),
            result: j.result,
            progress: j.progress,
            tags: j.tags,
            idempotency_key: j.idempotency_key,
            dedupe_key: j.dedupe_key,
            created_at: j.created_at,
            attempted_at: j.attempted_at,
            finished_at: j.finished_at,
            node_id: j.node_id.map(|n| n.0),
            lease_expires_at: j.lease_expires_at,
            cancel_requested: j.cancel_requested,
            unhandled: j.unhandled,
        }
    }
}

/// A job to enqueue: the options of `capstan enqueue`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueJob {
    /// Which handler runs it.
    pub kind: String,
    /// The handler's input (any JSON, at most 1 MiB).
    #[serde(default)]
    pub args: Value,
    /// Its queue (default `default`).
    pub queue: Option<String>,
    /// Higher runs first (default 0).
    pub priority: Option<i16>,
    /// Run no earlier than this.
    pub run_at: Option<DateTime<Utc>>,
    /// Run no earlier than this long from now (`"30s"`, `"5m"`).
    #[serde(default, with = "capstan::core::humantime_serde::option")]
    #[schema(value_type = Option<String>, example = "30s")]
    pub delay: Option<Duration>,
    /// Attempts allowed (default: its retry policy's).
    pub max_attempts: Option<i32>,
    /// Per-attempt timeout (`"5m"`; default: the node's).
    #[serde(default, with = "capstan::core::humantime_serde::option")]
    #[schema(value_type = Option<String>, example = "5m")]
    pub timeout: Option<Duration>,
    /// Labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// At most one job per key while it is retained: a known key answers
    /// with the existing job.
    pub idempotency_key: Option<String>,
    /// At most one not-yet-started job per key.
    pub dedupe_key: Option<String>,
}

impl EnqueueJob {
    fn into_new_job(self) -> NewJob {
        let mut job = NewJob::new(self.kind, self.args);
        if let Some(q) = self.queue {
            job = job.with_queue(q);
        }
        job.priority = self.priority.unwrap_or(0);
        job.run_at = self.run_at;
        job.delay = self.delay;
        job.max_attempts = self.max_attempts;
        job.timeout = self.timeout;
        job.tags = self.tags;
        job.idempotency_key = self.idempotency_key;
        job.dedupe_key = self.dedupe_key;
        job
    }
}

/// Many jobs, enqueued in one transaction: all or none.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueBatch {
    /// The jobs (at most 10,000).
    #[schema(max_items = 10000)]
    pub jobs: Vec<EnqueueJob>,
}

/// The body of `POST /v1/jobs`: one job, or `{"jobs": [...]}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EnqueueBody {
    /// Many jobs.
    Batch(EnqueueBatch),
    /// One job.
    One(EnqueueJob),
}

/// Most jobs in one batch.
pub const MAX_BATCH: usize = 10_000;

/// One job enqueued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Enqueued {
    /// True when a job with the same idempotency or dedupe key already
    /// existed and is the one returned.
    pub existing: bool,
    /// The job.
    pub job: JobView,
}

/// A batch enqueued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnqueuedBatch {
    /// One entry per job, in order.
    pub jobs: Vec<EnqueuedRef>,
}

/// One job of a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnqueuedRef {
    /// Its id.
    pub id: i64,
    /// Its state.
    pub state: String,
    /// An existing job with the same key.
    pub existing: bool,
}

/// Enqueue one job (201, or 200 with `existing` for a known key) or a
/// batch (201 when it made a job, 200 when every job existed).
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body = EnqueueBody,
    responses(
        (status = 201, description = "Created", body = Enqueued),
        (status = 200, description = "An existing job with the same key", body = Enqueued),
        (status = 400, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem),
    ))]
pub(crate) async fn enqueue(
    State(state): State<ServerState>,
    access: Access,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    access.require(Need::Enqueue)?;
    let is_batch = body
        .as_object()
        .is_some_and(|o| o.contains_key("jobs") && !o.contains_key("kind"));
    if is_batch {
        let batch: EnqueueBatch = parse_value(body)?;
        if batch.jobs.len() > MAX_BATCH {
            return Err(Problem::invalid(
                "jobs",
                format!(
                    "{} jobs in one batch; at most {MAX_BATCH}",
                    batch.jobs.len()
                ),
            ));
        }
        let jobs: Vec<NewJob> = batch
            .jobs
            .into_iter()
            .map(EnqueueJob::into_new_job)
            .collect();
        for (i, j) in jobs.iter().enumerate() {
            j.validate().map_err(|e| {
                Problem::invalid(format!("jobs[{i}].{}", e.field()), format!("job {i}: {e}"))
            })?;
        }
        let done = state.client.enqueue_many(jobs).await?;
        let status = if done.iter().all(|e| e.existing) {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        let jobs = done
            .into_iter()
            .map(|e| EnqueuedRef {
                id: e.id.0,
                state: e.state.as_str().to_owned(),
                existing: e.existing,
            })
            .collect();
        return Ok((status, Json(EnqueuedBatch { jobs })).into_response());
    }
    let job: EnqueueJob = parse_value(body)?;
    let job = job.into_new_job();
    job.validate()
        .map_err(|e| Problem::invalid(e.field(), e.to_string()))?;
    let done = state.client.enqueue(job).await?;
    let job = found(state.client.job(done.id).await?, done.id)?;
    let status = if done.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(Enqueued {
            existing: done.existing,
            job: job.into(),
        }),
    )
        .into_response())
}

fn parse_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        Problem::bad_field(path, e.into_inner().to_string())
    })
}

/// The job, or 404.
pub(crate) fn found(job: Option<Job>, id: JobId) -> Result<Job, Problem> {
    job.ok_or_else(|| not_found(id))
}

/// 404 for job `id`.
pub(crate) fn not_found(id: JobId) -> Problem {
    Problem::not_found(format!(
        "job {id} not found (it never existed or was deleted after its retention period)"
    ))
}

/// Filters and page of `GET /v1/jobs`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs with this tag.
    pub tag: Option<String>,
    /// At most this many (1 to 1000, default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of jobs, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last one. Jobs
    /// enqueued meanwhile never shift a later page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// List jobs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, body = JobPage), (status = 400, body = Problem)))]
pub(crate) async fn list(
    State(state): State<ServerState>,
    access: Access,
    Query(q): Query<ListQuery>,
) -> Result<Json<JobPage>, Problem> {
    access.require(Need::Read)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_parameter(format!(
            "limit {limit} is not between 1 and 1000"
        )));
    }
    let job_state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<JobState>()
                .map_err(|e| Problem::bad_parameter(e.to_string()))?,
        ),
    };
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(JobId(c.parse::<i64>().map_err(|_| {
            Problem::bad_parameter(format!("cursor {c:?} is not one this API gave"))
        })?)),
    };
    let jobs = state
        .client
        .list_jobs(&ListJobs {
            queue: q.queue,
            state: job_state,
            kind: q.kind,
            tag: q.tag,
            before,
            ids: None,
            limit,
        })
        .await?;
    let next_cursor = (jobs.len() == limit as usize)
        .then(|| jobs.last().map(|j| j.id.0.to_string()))
        .flatten();
    Ok(Json(JobPage {
        jobs: jobs.into_iter().map(JobView::from).collect(),
        next_cursor,
    }))
}

/// One job, with its attempt history.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, body = JobView), (status = 404, body = Problem)))]
pub(crate) async fn get(
    State(state): State<ServerState>,
    access: Access,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, Problem> {
    access.require(Need::Read)?;
    let job = found(state.client.job(JobId(id)).await?, JobId(id))?;
    Ok(Json(job.into()))
}

/// What a cancel did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Cancelled {
    /// `cancelled` (it was waiting) or `requested` (it runs: its holder
    /// was asked to stop it).
    pub outcome: String,
    /// The job.
    pub job: JobView,
}

/// Cancel a job: a waiting one at once, a running one by asking its holder.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, body = Cancelled), (status = 404, body = Problem),
        (status = 409, description = "Already finished", body = Problem)))]
pub(crate) async fn cancel(
    State(state): State<ServerState>,
    access: Access,
    Path(id): Path<i64>,
) -> Result<Json<Cancelled>, Problem> {
    access.require(Need::Admin)?;
    let (outcome, job) = match state.client.cancel(JobId(id)).await? {
        CancelOutcome::Cancelled(j) => ("cancelled", j),
        CancelOutcome::Requested(j) => ("requested", j),
    };
    Ok(Json(Cancelled {
        outcome: outcome.to_owned(),
        job: job.into(),
    }))
}

/// Run a job again now (a failed, cancelled, completed or waiting one).
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses((status = 200, body = JobView), (status = 404, body = Problem),
        (status = 409, description = "It is running", body = Problem)))]
pub(crate) async fn retry(
    State(state): State<ServerState>,
    access: Access,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, Problem> {
    access.require(Need::Admin)?;
    Ok(Json(state.client.retry(JobId(id)).await?.into()))
}

/// How long `wait` waits.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// At most this long (`"30s"`: the default, and the limit a longer
    /// timeout is shortened to).
    pub timeout: Option<String>,
}

/// Wait until the job is completed, failed or cancelled, whichever node
/// finished it: 200 with the job, or 408 with the job as it is on timeout.
#[utoipa::path(get, path = "/v1/jobs/{id}/wait", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id"), WaitQuery),
    responses((status = 200, body = JobView), (status = 408, description = "Not finished in time", body = JobView),
        (status = 404, body = Problem)))]
pub(crate) async fn wait(
    State(state): State<ServerState>,
    access: Access,
    Path(id): Path<i64>,
    Query(q): Query<WaitQuery>,
) -> Result<Response, Problem> {
    access.require(Need::Read)?;
    let max = state.pull.config().max_wait;
    let timeout = match q.timeout.as_deref() {
        None => max,
        Some(t) => capstan::core::humantime_serde::parse(t)
            .map_err(|e| Problem::bad_parameter(format!("timeout: {e}")))?,
    };
    // A longer wait is shortened to the server's limit: the caller gets 408
    // and waits again.
    let timeout = timeout.min(max);
    match crate::events::until_finished(&state, JobId(id), timeout).await? {
        Some(Ok(job)) => Ok(Json(JobView::from(job)).into_response()),
        Some(Err(job)) => {
            Ok((StatusCode::REQUEST_TIMEOUT, Json(JobView::from(job))).into_response())
        }
        None => Err(not_found(JobId(id))),
    }
}
