//! Server-sent events: `GET /v1/jobs/{id}/events` (a job's state changes
//! and progress) and `GET /v1/queues/{queue}/events` (its jobs' changes),
//! from whichever node made them, through the live hub.
//!
//! A job's stream starts with the job as it is (unless the client's
//! `Last-Event-ID` says it has seen that very state), then sends an event
//! `job` each time its attempt, state or progress changes; every event's
//! `id` names that version (`attempt.state.progress`), so a client that
//! reconnects with `Last-Event-ID` gets the current state if it moved on —
//! a final state is never missed. A queue's stream sends `job` events for
//! its jobs that changed, `available` when jobs became available (new ones
//! included: fetch them with `GET /v1/jobs`), and `resync` when changes may
//! have been missed (at a reconnect, or hints lost): list again. Both send
//! a keep-alive comment every `server.keep_alive` (15 s) and end cleanly when the server stops.

use std::collections::hash_map::DefaultHasher;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use capstan::core::validate_queue;
use capstan::{Job, JobId};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::ServerState;
use crate::auth::{Access, Need};
use crate::extract::Path;
use crate::jobs::{JobView, found};
use crate::live::LiveEvent;
use crate::problem::Problem;

type Stream = axum::response::sse::KeepAliveStream<ReceiverStream<Result<Event, Infallible>>>;

/// The version of a job an event shows: attempt, state, progress.
fn version(job: &Job) -> String {
    let mut h = DefaultHasher::new();
    job.progress.as_ref().map(|p| p.to_string()).hash(&mut h);
    format!("{}.{}.{:016x}", job.attempt, job.state, h.finish())
}

/// A `job` event, without an id (each stream names its events).
fn job_event(job: &Job) -> Event {
    let data = serde_json::to_string(&JobView::from(job.clone())).unwrap_or_default();
    Event::default().event("job").data(data)
}

fn last_event_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A job's changes, as server-sent events.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event seen, to resume")),
    responses((status = 200, description = "text/event-stream: `job` events (a job as in GET /v1/jobs/{id}), each with an `id` naming its version", content_type = "text/event-stream"),
        (status = 404, body = Problem)))]
pub(crate) async fn job(
    State(state): State<ServerState>,
    access: Access,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Sse<Stream>, Problem> {
    access.require(Need::Read)?;
    let id = JobId(id);
    let mut watch = state.live.watch_job(id);
    let job = found(state.client.job(id).await?, id)?;
    let (tx, rx) = mpsc::channel(16);
    let seen = last_event_id(&headers);
    tokio::spawn(async move {
        let mut shown = seen;
        let mut job = Some(job);
        let mut pause = FIRST_LOOK;
        loop {
            if let Some(j) = job.take() {
                let v = version(&j);
                if shown.as_deref() != Some(v.as_str()) {
                    if tx.send(Ok(job_event(&j).id(&v))).await.is_err() {
                        return;
                    }
                    shown = Some(v);
                    pause = FIRST_LOOK;
                }
            }
            let reread = tokio::select! {
                e = watch.rx.recv() => match e {
                    Ok(LiveEvent::Changed(jobs)) => {
                        job = jobs.iter().find(|j| j.id == id).cloned();
                        false
                    }
                    Ok(LiveEvent::Available(_)) => false,
                    Ok(LiveEvent::Missed) | Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return,
                },
                () = tokio::time::sleep(pause) => {
                    pause = (pause * 2).min(LAST_LOOK);
                    true
                }
                () = tx.closed() => return,
                () = state.stop.cancelled() => return,
            };
            if reread {
                match state.client.job(id).await {
                    Ok(Some(j)) => job = Some(j),
                    Ok(None) => return, // deleted after its retention
                    Err(e) => {
                        tracing::debug!(error = %e, job = %id, "a live stream could not read its job")
                    }
                }
            }
        }
    });
    Ok(sse(rx, state.config.keep_alive))
}

/// A queue's changes, as server-sent events.
#[utoipa::path(get, path = "/v1/queues/{queue}/events", tag = "queues",
    params(("queue" = String, Path, description = "The queue"),
        ("Last-Event-ID" = Option<String>, Header, description = "Present on a reconnect: the stream starts with `resync`")),
    responses((status = 200, description = "text/event-stream: `job` events (a job of the queue that changed), `available` (jobs became available: list them), `resync` (changes may have been missed: list again)", content_type = "text/event-stream"),
        (status = 400, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn queue(
    State(state): State<ServerState>,
    access: Access,
    Path(queue): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<Stream>, Problem> {
    access.require(Need::Read)?;
    validate_queue(&queue).map_err(|e| Problem::invalid("queue", e.to_string()))?;
    let mut watch = state.live.watch_queue();
    let (tx, rx) = mpsc::channel(256);
    let resumed = last_event_id(&headers).is_some();
    tokio::spawn(async move {
        let mut n: u64 = 0;
        let mut next = |event: Event| {
            n += 1;
            event.id(n.to_string())
        };
        if resumed
            && tx
                .send(Ok(next(Event::default().event("resync").data("{}"))))
                .await
                .is_err()
        {
            return;
        }
        loop {
            let events: Vec<Event> = tokio::select! {
                e = watch.rx.recv() => match e {
                    Ok(LiveEvent::Changed(jobs)) => jobs
                        .iter()
                        .filter(|j| j.queue == queue)
                        .map(job_event)
                        .collect(),
                    Ok(LiveEvent::Available(qs)) => {
                        if qs.is_none_or(|qs| qs.contains(&queue)) {
                            vec![Event::default().event("available").data("{}")]
                        } else {
                            Vec::new()
                        }
                    }
                    Ok(LiveEvent::Missed) | Err(RecvError::Lagged(_)) => {
                        vec![Event::default().event("resync").data("{}")]
                    }
                    Err(RecvError::Closed) => return,
                },
                () = tx.closed() => return,
                () = state.stop.cancelled() => return,
            };
            for e in events {
                if tx.send(Ok(next(e))).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(sse(rx, state.config.keep_alive))
}

/// A job stream looks again after this long without news, then less often.
const FIRST_LOOK: Duration = Duration::from_millis(250);
/// The longest a job stream goes without looking.
const LAST_LOOK: Duration = Duration::from_secs(5);

fn sse(rx: mpsc::Receiver<Result<Event, Infallible>>, every: Duration) -> Sse<Stream> {
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(every).text("keep-alive"))
}

/// Wait until job `id` is finished (or `timeout`): `Ok(job)` when it is,
/// `Err(job)` as it is when the wait ends first. `None`: no such job.
pub(crate) async fn until_finished(
    state: &ServerState,
    id: JobId,
    timeout: Duration,
) -> Result<Option<Result<Job, Job>>, Problem> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut watch = state.live.watch_job(id);
    let mut pause = FIRST_LOOK;
    let Some(mut job) = state.client.job(id).await? else {
        return Ok(None);
    };
    loop {
        if job.state.is_finished() {
            return Ok(Some(Ok(job)));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(Some(Err(job)));
        }
        let news = tokio::select! {
            e = watch.rx.recv() => match e {
                Ok(LiveEvent::Changed(jobs)) => jobs.iter().find(|j| j.id == id).cloned(),
                Ok(LiveEvent::Available(_)) => continue,
                _ => None,
            },
            () = tokio::time::sleep(pause.min(left)) => {
                pause = (pause * 2).min(Duration::from_secs(2));
                None
            }
            () = state.stop.cancelled() => {
                return Err(Problem::unavailable("this server is shutting down: wait again (on another node)"));
            }
        };
        job = match news {
            Some(j) => j,
            None => match state.client.job(id).await? {
                Some(j) => j,
                None => return Ok(None),
            },
        };
    }
}
