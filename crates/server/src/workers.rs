//! The pull protocol for workers in any language: claim jobs with their
//! leases (long-polling when none is available), heartbeat them, complete
//! or fail them — one at a time or in batches. Every write names the lease
//! its claim handed out; a lease that is no longer the job's gets 409 and
//! changes nothing.

use std::time::Duration;

use axum::extract::State;
use capstan::runtime::{Beaten, PullBeat, PullClaim, PullFailure};
use capstan::{Job, JobId, Lease, LeaseToken};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::ServerState;
use crate::auth::{Access, Need};
use crate::extract::{Json, Path};
use crate::jobs::{JobView, found};
use crate::problem::Problem;

/// A claim.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The worker's name: unique per worker process (1 to 200 characters
    /// from `A-Z a-z 0-9 _ . : - @`). It appears in `GET /v1/nodes`.
    pub worker: String,
    /// At most this many jobs (default 1, at most 1000).
    #[schema(minimum = 1, maximum = 1000)]
    pub max: Option<u32>,
    /// When none is available, wait this long for one (`"20s"`; default
    /// `"0s"`; a wait over the server's `max_wait`, 30 s, is shortened to it).
    #[serde(default, with = "capstan::core::humantime_serde::option")]
    #[schema(value_type = Option<String>, example = "20s")]
    pub wait: Option<Duration>,
    /// Only these kinds (default: any kind).
    pub kinds: Option<Vec<String>>,
}

/// A claimed job, with the lease every later call about it must name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClaimedJob {
    /// The job's id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// The handler's input.
    pub args: Value,
    /// This attempt (1-based).
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Its priority.
    pub priority: i16,
    /// Its labels.
    pub tags: Vec<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Its own timeout per attempt, in milliseconds (else the server's
    /// default): heartbeat well within it.
    pub timeout_ms: Option<i64>,
    /// The lease token of this claim.
    pub lease: String,
    /// When the lease ends unless heartbeat.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl ClaimedJob {
    fn of(j: Job) -> Self {
        ClaimedJob {
            id: j.id.0,
            lease: j.lease_token.map(|t| t.0).unwrap_or_default(),
            lease_expires_at: j.lease_expires_at,
            queue: j.queue,
            kind: j.kind,
            args: j.args,
            attempt: j.attempt,
            max_attempts: j.max_attempts,
            priority: j.priority,
            tags: j.tags,
            created_at: j.created_at,
            timeout_ms: j.timeout_ms,
        }
    }
}

/// Claimed jobs (none when nothing came within `wait`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Claimed {
    /// The jobs, each with its lease.
    pub jobs: Vec<ClaimedJob>,
}

/// Claim jobs of a queue for a pull worker; long-polls up to `wait` when
/// none is available, and wakes at once on enqueue.
#[utoipa::path(post, path = "/v1/queues/{queue}/claim", tag = "workers",
    params(("queue" = String, Path, description = "The queue")),
    request_body = ClaimRequest,
    responses((status = 200, body = Claimed), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 409, description = "The worker name is a node's", body = Problem),
        (status = 422, body = Problem)))]
pub(crate) async fn claim(
    State(state): State<ServerState>,
    access: Access,
    Path(queue): Path<String>,
    Json(req): Json<ClaimRequest>,
) -> Result<Json<Claimed>, Problem> {
    access.require_queue(&queue)?;
    let jobs = state
        .pull
        .claim(&PullClaim {
            worker: req.worker,
            queue,
            max: req.max.unwrap_or(1),
            wait: req.wait.unwrap_or_default(),
            kinds: req.kinds,
        })
        .await?;
    Ok(Json(Claimed {
        jobs: jobs.into_iter().map(ClaimedJob::of).collect(),
    }))
}

/// A heartbeat of one job.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The lease of the claim.
    pub lease: String,
    /// Progress to record (any JSON, at most 64 KiB).
    pub progress: Option<Value>,
    /// The worker's name (keeps its row alive on any server).
    pub worker: Option<String>,
}

/// A lease extended.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeartbeatReply {
    /// When the lease now ends: the job's timeout plus the lease grace from
    /// now, as far as each heartbeat extends it.
    pub lease_expires_at: DateTime<Utc>,
    /// A user asked to cancel the job: stop, and fail it.
    pub cancel_requested: bool,
}

/// Extend a job's lease and record its progress.
#[utoipa::path(post, path = "/v1/jobs/{id}/heartbeat", tag = "workers",
    params(("id" = i64, Path, description = "The job's id")),
    request_body = HeartbeatRequest,
    responses((status = 200, body = HeartbeatReply), (status = 404, body = Problem),
        (status = 409, description = "The lease is no longer the job's", body = Problem),
        (status = 422, body = Problem)))]
pub(crate) async fn heartbeat(
    State(state): State<ServerState>,
    access: Access,
    Path(id): Path<i64>,
    Json(req): Json<HeartbeatRequest>,
) -> Result<Json<HeartbeatReply>, Problem> {
    access.require(Need::Work)?;
    require_jobs_queues(&state, &access, [id]).await?;
    let lease = lease(id, req.lease);
    let mut out = state
        .pull
        .heartbeat(
            req.worker.as_deref(),
            vec![PullBeat {
                lease: lease.clone(),
                progress: req.progress,
            }],
        )
        .await?;
    match out.pop() {
        Some(Beaten::Extended {
            expires_at,
            cancel_requested,
            ..
        }) => Ok(Json(HeartbeatReply {
            lease_expires_at: expires_at,
            cancel_requested,
        })),
        _ => Err(lost(&state, &lease).await),
    }
}

/// Many heartbeats.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBatch {
    /// The worker's name (keeps its row alive on any server).
    pub worker: Option<String>,
    /// The jobs (at most 10,000).
    #[schema(max_items = 10000)]
    pub jobs: Vec<HeartbeatItem>,
}

/// One job of a heartbeat batch.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatItem {
    /// The job's id.
    pub id: i64,
    /// The lease of the claim.
    pub lease: String,
    /// Progress to record.
    pub progress: Option<Value>,
}

/// What a heartbeat batch did, per job, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeartbeatBatchReply {
    /// One entry per job.
    pub jobs: Vec<HeartbeatOutcome>,
}

/// What a heartbeat did to one job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HeartbeatOutcome {
    /// The job's id.
    pub id: i64,
    /// `extended`, or `fenced`: the lease is no longer the job's; stop
    /// working on it.
    pub status: String,
    /// When the lease now ends (extended only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// A user asked to cancel the job (extended only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_requested: Option<bool>,
}

/// Extend the leases of many jobs in one call.
#[utoipa::path(post, path = "/v1/heartbeat", tag = "workers",
    request_body = HeartbeatBatch,
    responses((status = 200, body = HeartbeatBatchReply), (status = 422, body = Problem)))]
pub(crate) async fn heartbeat_many(
    State(state): State<ServerState>,
    access: Access,
    Json(req): Json<HeartbeatBatch>,
) -> Result<Json<HeartbeatBatchReply>, Problem> {
    access.require(Need::Work)?;
    check_batch(req.jobs.len())?;
    require_jobs_queues(&state, &access, req.jobs.iter().map(|j| j.id)).await?;
    let beats = req
        .jobs
        .into_iter()
        .map(|j| PullBeat {
            lease: lease(j.id, j.lease),
            progress: j.progress,
        })
        .collect();
    let out = state.pull.heartbeat(req.worker.as_deref(), beats).await?;
    Ok(Json(HeartbeatBatchReply {
        jobs: out
            .into_iter()
            .map(|b| match b {
                Beaten::Extended {
                    lease,
                    expires_at,
                    cancel_requested,
                } => HeartbeatOutcome {
                    id: lease.job_id.0,
                    status: "extended".into(),
                    lease_expires_at: Some(expires_at),
                    cancel_requested: Some(cancel_requested),
                },
                Beaten::Fenced { lease } => HeartbeatOutcome {
                    id: lease.job_id.0,
                    status: "fenced".into(),
                    lease_expires_at: None,
                    cancel_requested: None,
                },
            })
            .collect(),
    }))
}

/// A completion.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// The lease of the claim.
    pub lease: String,
    /// The result (any JSON, at most 1 MiB; default null).
    #[serde(default)]
    pub result: Value,
}

/// A job completed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompleteReply {
    /// The job's id.
    pub id: i64,
    /// `completed`.
    pub state: String,
}

/// Complete a job with its result.
#[utoipa::path(post, path = "/v1/jobs/{id}/complete", tag = "workers",
    params(("id" = i64, Path, description = "The job's id")),
    request_body = CompleteRequest,
    responses((status = 200, body = CompleteReply), (status = 404, body = Problem),
        (status = 409, description = "The lease is no longer the job's", body = Problem),
        (status = 422, body = Problem)))]
pub(crate) async fn complete(
    State(state): State<ServerState>,
    access: Access,
    Path(id): Path<i64>,
    Json(req): Json<CompleteRequest>,
) -> Result<Json<CompleteReply>, Problem> {
    access.require(Need::Work)?;
    require_jobs_queues(&state, &access, [id]).await?;
    let lease = lease(id, req.lease);
    let report = state
        .pull
        .complete(vec![(lease.clone(), req.result)])
        .await?;
    if report.accepted.contains(&lease) {
        Ok(Json(CompleteReply {
            id,
            state: "completed".into(),
        }))
    } else {
        Err(lost(&state, &lease).await)
    }
}

/// Many completions.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBatch {
    /// The jobs (at most 10,000).
    #[schema(max_items = 10000)]
    pub jobs: Vec<CompleteItem>,
}

/// One job of a completion batch.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteItem {
    /// The job's id.
    pub id: i64,
    /// The lease of the claim.
    pub lease: String,
    /// The result.
    #[serde(default)]
    pub result: Value,
}

/// What a completion batch did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompleteBatchReply {
    /// The jobs completed.
    pub completed: Vec<i64>,
    /// The jobs whose lease was no longer theirs: nothing was written.
    pub fenced: Vec<i64>,
}

/// Complete many jobs in one round trip to the database.
#[utoipa::path(post, path = "/v1/complete", tag = "workers",
    request_body = CompleteBatch,
    responses((status = 200, body = CompleteBatchReply), (status = 422, body = Problem)))]
pub(crate) async fn complete_many(
    State(state): State<ServerState>,
    access: Access,
    Json(req): Json<CompleteBatch>,
) -> Result<Json<CompleteBatchReply>, Problem> {
    access.require(Need::Work)?;
    check_batch(req.jobs.len())?;
    require_jobs_queues(&state, &access, req.jobs.iter().map(|j| j.id)).await?;
    let done = req
        .jobs
        .into_iter()
        .map(|j| (lease(j.id, j.lease), j.result))
        .collect();
    let report = state.pull.complete(done).await?;
    Ok(Json(CompleteBatchReply {
        completed: report.accepted.iter().map(|l| l.job_id.0).collect(),
        fenced: report.fenced.iter().map(|l| l.job_id.0).collect(),
    }))
}

/// A failed attempt.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// The lease of the claim.
    pub lease: String,
    /// What went wrong (kept in the attempt history, cut at 8 KiB).
    pub error: String,
    /// Retrying cannot help: fail the job now (default false).
    #[serde(default)]
    pub permanent: bool,
    /// Retry after exactly this long (`"30s"`) instead of the backoff.
    #[serde(default, with = "capstan::core::humantime_serde::option")]
    #[schema(value_type = Option<String>, example = "30s")]
    pub retry_after: Option<Duration>,
    /// The HTTP status the worker's own call got, when that is why it
    /// failed: the push queues' table decides (429, 502, 503, 504 and
    /// other 5xx or 3xx: retried; 410 and other 4xx: failed for good), and
    /// the status goes into the attempt history. A 2xx is refused (422):
    /// complete the job instead.
    #[schema(minimum = 100, maximum = 599, example = 503)]
    pub status: Option<u16>,
}

/// Fail an attempt: retried with the job's backoff (or after
/// `retry_after`) while attempts are left, failed for good otherwise.
/// Answers with the job as it is now.
#[utoipa::path(post, path = "/v1/jobs/{id}/fail", tag = "workers",
    params(("id" = i64, Path, description = "The job's id")),
    request_body = FailRequest,
    responses((status = 200, body = JobView), (status = 404, body = Problem),
        (status = 409, description = "The lease is no longer the job's", body = Problem),
        (status = 422, body = Problem)))]
pub(crate) async fn fail(
    State(state): State<ServerState>,
    access: Access,
    Path(id): Path<i64>,
    Json(req): Json<FailRequest>,
) -> Result<Json<JobView>, Problem> {
    access.require(Need::Work)?;
    require_jobs_queues(&state, &access, [id]).await?;
    let job = state
        .pull
        .fail(
            lease(id, req.lease),
            PullFailure {
                message: req.error,
                permanent: req.permanent,
                retry_after: req.retry_after,
                status: req.status,
            },
        )
        .await?;
    Ok(Json(job.into()))
}

/// A release.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The lease of the claim.
    pub lease: String,
}

/// A job given back.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReleaseReply {
    /// The job's id.
    pub id: i64,
    /// `available` (or `cancelled`, when a user had asked).
    pub state: String,
}

/// Give a job back to its queue without using up an attempt: a worker that
/// shuts down before it could run or finish it.
#[utoipa::path(post, path = "/v1/jobs/{id}/release", tag = "workers",
    params(("id" = i64, Path, description = "The job's id")),
    request_body = ReleaseRequest,
    responses((status = 200, body = ReleaseReply), (status = 404, body = Problem),
        (status = 409, description = "The lease is no longer the job's", body = Problem)))]
pub(crate) async fn release(
    State(state): State<ServerState>,
    access: Access,
    Path(id): Path<i64>,
    Json(req): Json<ReleaseRequest>,
) -> Result<Json<ReleaseReply>, Problem> {
    access.require(Need::Work)?;
    require_jobs_queues(&state, &access, [id]).await?;
    let lease = lease(id, req.lease);
    let report = state.pull.release(vec![lease.clone()]).await?;
    if !report.accepted.contains(&lease) {
        return Err(lost(&state, &lease).await);
    }
    let job = found(state.client.job(lease.job_id).await?, lease.job_id)?;
    Ok(Json(ReleaseReply {
        id,
        state: job.state.as_str().to_owned(),
    }))
}

/// A worker token limited to some queues may act only on jobs of those
/// queues (403 otherwise, nothing changed). One read of the named jobs,
/// and only for such a token; a job that does not exist is left to the
/// call itself (404, or fenced in a batch).
async fn require_jobs_queues(
    state: &ServerState,
    access: &Access,
    ids: impl IntoIterator<Item = i64>,
) -> Result<(), Problem> {
    if !access.queue_scoped() {
        return Ok(());
    }
    let ids: Vec<JobId> = ids.into_iter().map(JobId).collect();
    let jobs = state
        .client
        .list_jobs(&capstan::store::jobs::ListJobs {
            limit: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            ids: Some(ids),
            ..Default::default()
        })
        .await?;
    jobs.iter().try_for_each(|j| {
        access.require_queue(&j.queue).map_err(|_| {
            Problem::forbidden(format!(
                "job {} is in queue {}, which this worker token may not work on; nothing was changed",
                j.id, j.queue
            ))
        })
    })
}

fn lease(id: i64, token: String) -> Lease {
    Lease {
        job_id: JobId(id),
        token: LeaseToken(token),
    }
}

fn check_batch(n: usize) -> Result<(), Problem> {
    if n > crate::jobs::MAX_BATCH {
        return Err(Problem::invalid(
            "jobs",
            format!("{n} jobs in one batch; at most {}", crate::jobs::MAX_BATCH),
        ));
    }
    Ok(())
}

/// Why a lease did not act: the job is gone (404), or is no longer held
/// under it (409, saying what it is now).
async fn lost(state: &ServerState, lease: &Lease) -> Problem {
    match state.client.job(lease.job_id).await {
        Ok(job) => match found(job, lease.job_id) {
            Err(p) => p,
            Ok(job) => Problem::stale_lease(format!(
                "job {} is no longer held under lease {} (it is {}, attempt {}): stop working on it; nothing was changed",
                lease.job_id, lease.token, job.state, job.attempt
            ))
            .with_field("lease"),
        },
        Err(e) => e.into(),
    }
}
