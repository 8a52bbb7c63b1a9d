//! The executor: runs one claimed job under its timeout and its
//! cancellation, turns the way it ended into a finish, and hands that to the
//! completer.
//!
//! The handler runs in a task of its own, so a panic is caught as a failed
//! attempt and a timeout can drop it. Ways it can end, and what they become:
//! - returned `Ok` → completed (even if a cancel arrived meanwhile: the work is done);
//! - returned `Err` → retried after backoff or `retry_after`, failed if
//!   permanent or out of attempts, snoozed if it asked;
//! - panicked or timed out → retried like a retryable error;
//! - cancelled by a user → cancelled;
//! - shut down past the grace period → handed back, attempt not burned.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::limits::MAX_DELAY;
use capstan_core::{ErrorClass, Job};
use capstan_store::Store;
use capstan_store::jobs::{ErrorRecord, Finish, Outcome};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::LeaseTerms;
use crate::context::{Deadline, JobContext, Reached};
use crate::leases::StopReason;
use crate::prefetch::Slot;
use crate::running::{Shared, Start};
use crate::{Config, JobError, RetryPolicies};

/// What the executor needs of the configuration.
#[derive(Debug)]
pub(crate) struct ExecutorConfig {
    pub(crate) lease: LeaseTerms,
    /// How long a stopped handler gets to return before it is dropped.
    pub(crate) cancel_grace: Duration,
    /// How a failed attempt is retried.
    pub(crate) retry: RetryPolicies,
}

impl ExecutorConfig {
    pub(crate) fn of(config: &Config) -> Self {
        ExecutorConfig {
            lease: config.lease_terms(),
            cancel_grace: config.cancel_grace,
            retry: config.retry.clone(),
        }
    }
}

/// Runs claimed jobs, one task each, on the node's job tracker. Cheap to
/// clone: every producer of a node holds one.
pub(crate) struct Executor<S: Store> {
    shared: Arc<Shared<S>>,
    config: Arc<ExecutorConfig>,
}

impl<S: Store> Clone for Executor<S> {
    fn clone(&self) -> Self {
        Executor {
            shared: self.shared.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: Store> Executor<S> {
    pub(crate) fn new(shared: Arc<Shared<S>>, config: ExecutorConfig) -> Self {
        Executor {
            shared,
            config: Arc::new(config),
        }
    }

    /// Run `start` in a task of its own, holding its slot until the
    /// completer has its finish.
    pub(crate) fn start(&self, start: Start, slot: Slot) {
        let run = self.clone().execute(start, slot);
        self.shared.jobs.spawn(run);
    }

    /// One job, from its start to the hand-over of its finish.
    pub(crate) async fn execute(self, start: Start, slot: Slot) {
        execute(&self.shared, &self.config, start, slot).await;
    }
}

enum Ended {
    Returned(Result<Value, JobError>),
    TimedOut(Duration),
    /// Stopped before its lease ran out: the lease could not be extended.
    LeaseEnding,
    Cancelled(Option<Result<Value, JobError>>),
    ShutDown(Option<Result<Value, JobError>>),
}

async fn execute<S: Store>(
    shared: &Arc<Shared<S>>,
    config: &ExecutorConfig,
    start: Start,
    slot: Slot,
) {
    let Start {
        job,
        lease,
        cancel,
        lease_until,
    } = start;
    let timeout = config.lease.timeout(&job);
    let ended = match shared.workers.get(&job.queue, &job.kind) {
        None => Ended::Returned(Err(JobError::permanent(format!(
            "no handler for kind {} on node {}",
            job.kind, shared.node_id
        )))),
        Some(handler) => {
            let deadline = Arc::new(Deadline::new(
                timeout,
                config.lease.lease(&job),
                lease_until,
                config.cancel_grace,
            ));
            let ctx = JobContext {
                lease: lease.clone(),
                kind: job.kind.as_str().into(),
                queue: job.queue.as_str().into(),
                attempt: job.attempt,
                max_attempts: job.max_attempts,
                cancel: cancel.clone(),
                deadline: deadline.clone(),
                keeper: shared.keeper.clone(),
            };
            let args = job.args.clone();
            // The handler is called inside its task, so that a handler that
            // panics before returning its future is caught like any panic.
            let task = tokio::spawn(async move { handler.call(ctx, args).await });
            let stops = Stops {
                cancel: &cancel,
                hard_stop: &shared.hard_stop,
                crash: &shared.crash,
                cancel_grace: config.cancel_grace,
            };
            supervise(task, &deadline, timeout, stops).await
        }
    };
    if shared.crash.is_cancelled() {
        // A simulated crash writes nothing: the job stays running until rescued.
        shared.leases.release(&lease);
        return;
    }
    let Some(outcome) = outcome(&job, ended, shared.leases.reason(&lease), &config.retry) else {
        // Taken from this node: nothing of ours to write.
        shared.leases.release(&lease);
        return;
    };
    if let Outcome::Retry { error, .. } | Outcome::Fail { error } = &outcome {
        tracing::debug!(job_id = %job.id, kind = %job.kind, attempt = job.attempt, class = %error.class, error = %error.message, "attempt failed");
    }
    let finish = Finish {
        lease: lease.clone(),
        outcome,
    };
    // The slot and the lease are held until the completer has the finish:
    // a completer that cannot write holds new work back (backpressure), and
    // the heartbeat must not take the lease for one it does not know.
    if shared.completer.send(finish).await.is_err() {
        tracing::error!(job_id = %job.id, "completer stopped before this job's finish was written; its lease will expire and it will be rescued");
    }
    shared.leases.release(&lease);
    drop(slot);
}

/// The signals that can stop a handler.
struct Stops<'a> {
    /// This job's cancellation (user request or timeout); the handler sees it.
    cancel: &'a CancellationToken,
    /// Shutdown past its grace period.
    hard_stop: &'a CancellationToken,
    /// A simulated crash: drop the handler at once.
    crash: &'a CancellationToken,
    /// How long a stopped handler gets to return.
    cancel_grace: Duration,
}

async fn supervise(
    mut task: JoinHandle<Result<Value, JobError>>,
    deadline: &Deadline,
    timeout: Duration,
    stops: Stops<'_>,
) -> Ended {
    let Stops {
        cancel,
        hard_stop,
        crash,
        cancel_grace,
    } = stops;
    loop {
        tokio::select! {
            biased;
            res = &mut task => {
                // The handler may return on its own right after being told
                // to stop: what stopped it decides the outcome.
                let r = joined(res);
                return if hard_stop.is_cancelled() {
                    Ended::ShutDown(Some(r))
                } else if cancel.is_cancelled() {
                    Ended::Cancelled(Some(r))
                } else {
                    Ended::Returned(r)
                };
            }
            () = tokio::time::sleep_until(deadline.at()) => {
                // A heartbeat may have pushed the deadline back while we slept.
                let Some(reached) = deadline.reached(tokio::time::Instant::now()) else {
                    continue;
                };
                cancel.cancel();
                task.abort();
                return match reached {
                    Reached::Timeout => Ended::TimedOut(timeout),
                    Reached::Lease => Ended::LeaseEnding,
                };
            }
            () = cancel.cancelled() => {
                return Ended::Cancelled(wind_down(task, cancel_grace).await);
            }
            () = hard_stop.cancelled() => {
                cancel.cancel();
                if crash.is_cancelled() {
                    task.abort();
                    return Ended::ShutDown(None);
                }
                return Ended::ShutDown(wind_down(task, cancel_grace).await);
            }
        }
    }
}

/// The handler was told to stop: give it `grace` to return, then drop it.
async fn wind_down(
    mut task: JoinHandle<Result<Value, JobError>>,
    grace: Duration,
) -> Option<Result<Value, JobError>> {
    match tokio::time::timeout(grace, &mut task).await {
        Ok(res) => Some(joined(res)),
        Err(_) => {
            task.abort();
            None
        }
    }
}

fn joined(res: Result<Result<Value, JobError>, tokio::task::JoinError>) -> Result<Value, JobError> {
    match res {
        Ok(r) => r,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_owned());
            Err(JobError {
                class: ErrorClass::Panicked,
                message: format!("handler panicked: {message}"),
                retry_after: None,
                snooze: None,
            })
        }
        Err(_) => Err(JobError {
            class: ErrorClass::Cancelled,
            message: "handler task was aborted".to_owned(),
            retry_after: None,
            snooze: None,
        }),
    }
}

/// How the job ends, given how its handler ended and, if it was told to
/// stop, why; `None` when there is nothing to write (it was taken away).
fn outcome(
    job: &Job,
    ended: Ended,
    stopped: Option<StopReason>,
    retry: &RetryPolicies,
) -> Option<Outcome> {
    Some(match ended {
        Ended::Returned(Ok(result))
        | Ended::Cancelled(Some(Ok(result)))
        | Ended::ShutDown(Some(Ok(result))) => Outcome::Complete { result },
        Ended::Returned(Err(e)) => after_error(job, e, retry),
        Ended::TimedOut(t) => after_error(
            job,
            JobError {
                class: ErrorClass::Timeout,
                message: format!("timed out after {} ms without a heartbeat", t.as_millis()),
                retry_after: None,
                snooze: None,
            },
            retry,
        ),
        Ended::LeaseEnding => after_error(
            job,
            JobError {
                class: ErrorClass::Timeout,
                message: "stopped before its lease ran out: the lease could not be extended (was the database unreachable?)".to_owned(),
                retry_after: None,
                snooze: None,
            },
            retry,
        ),
        Ended::Cancelled(_) => match stopped {
            Some(StopReason::TakenAway) => return None,
            Some(StopReason::Replaced) => Outcome::HandBack,
            Some(StopReason::Cancelled) | None => Outcome::Cancel {
                error: ErrorRecord {
                    class: ErrorClass::Cancelled,
                    message: "cancelled by a user while running".to_owned(),
                },
            },
        },
        Ended::ShutDown(_) => Outcome::HandBack,
    })
}

pub(crate) fn after_error(job: &Job, e: JobError, retry: &RetryPolicies) -> Outcome {
    if let Some(asked) = e.snooze.or(e.retry_after).filter(|d| *d > MAX_DELAY) {
        // A job left waiting for centuries is a stuck job: say so, now.
        return Outcome::Fail {
            error: ErrorRecord {
                class: ErrorClass::Permanent,
                message: format!(
                    "the handler asked to run this job again after {asked:?}, more than the limit of 100 years ({}); it was failed instead",
                    e.message
                ),
            },
        };
    }
    if let Some(delay) = e.snooze {
        return Outcome::Snooze { delay };
    }
    let error = ErrorRecord {
        class: e.class,
        message: e.message,
    };
    if e.class == ErrorClass::Permanent || job.attempt >= job.max_attempts {
        return Outcome::Fail { error };
    }
    let delay = e.retry_after.unwrap_or_else(|| {
        retry
            .for_job(&job.kind, &job.queue)
            .delay_after(job.attempt, rand::random::<f64>())
    });
    Outcome::Retry { error, delay }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_core::{JobId, JobState, RetryPolicy};

    fn job(attempt: i32, max: i32) -> Job {
        Job {
            id: JobId(1),
            queue: "q".into(),
            kind: "k".into(),
            args: Value::Null,
            priority: 0,
            state: JobState::Running,
            attempt,
            max_attempts: max,
            run_at: chrono::Utc::now(),
            timeout_ms: None,
            errors: vec![],
            result: None,
            progress: None,
            tags: vec![],
            idempotency_key: None,
            dedupe_key: None,
            created_at: chrono::Utc::now(),
            attempted_at: None,
            finished_at: None,
            node_id: None,
            lease_token: None,
            lease_expires_at: None,
            cancel_requested: false,
            unhandled: false,
        }
    }

    fn outcome_of(job: &Job, ended: Ended, p: &RetryPolicies) -> Outcome {
        outcome(job, ended, None, p).expect("an outcome")
    }

    fn policies() -> RetryPolicies {
        RetryPolicies {
            default: RetryPolicy::exponential(4, Duration::from_secs(2), 2.0),
            ..RetryPolicies::default()
        }
    }

    #[test]
    fn each_error_class_leads_where_it_should() {
        let p = policies();
        let o = outcome_of(
            &job(1, 4),
            Ended::Returned(Err(JobError::retryable("503"))),
            &p,
        );
        assert!(matches!(o, Outcome::Retry { delay, .. } if delay == Duration::from_secs(2)));
        let o = outcome_of(
            &job(3, 4),
            Ended::Returned(Err(JobError::retryable("503"))),
            &p,
        );
        assert!(matches!(o, Outcome::Retry { delay, .. } if delay == Duration::from_secs(8)));
        let o = outcome_of(
            &job(4, 4),
            Ended::Returned(Err(JobError::retryable("503"))),
            &p,
        );
        assert!(matches!(o, Outcome::Fail { .. }), "out of attempts");
        let o = outcome_of(
            &job(1, 4),
            Ended::Returned(Err(JobError::permanent("401"))),
            &p,
        );
        assert!(matches!(o, Outcome::Fail { error } if error.class == ErrorClass::Permanent));
        let e = JobError::retry_after("429", Duration::from_secs(17));
        let o = outcome_of(&job(1, 4), Ended::Returned(Err(e)), &p);
        assert!(matches!(o, Outcome::Retry { delay, .. } if delay == Duration::from_secs(17)));
        let o = outcome_of(&job(1, 4), Ended::TimedOut(Duration::from_secs(1)), &p);
        assert!(matches!(o, Outcome::Retry { error, .. } if error.class == ErrorClass::Timeout));
        let o = outcome_of(
            &job(1, 4),
            Ended::Returned(Err(JobError::snooze(Duration::from_secs(5)))),
            &p,
        );
        assert!(matches!(o, Outcome::Snooze { delay } if delay == Duration::from_secs(5)));
        assert!(matches!(
            outcome_of(&job(1, 4), Ended::Cancelled(None), &p),
            Outcome::Cancel { .. }
        ));
        assert!(matches!(
            outcome_of(&job(1, 4), Ended::ShutDown(None), &p),
            Outcome::HandBack
        ));
        let o = outcome_of(&job(1, 4), Ended::LeaseEnding, &p);
        assert!(
            matches!(o, Outcome::Retry { error, .. } if error.class == ErrorClass::Timeout && error.message.contains("lease"))
        );
        let forever = JobError::retry_after("429", Duration::MAX);
        let o = outcome_of(&job(1, 4), Ended::Returned(Err(forever)), &p);
        assert!(
            matches!(o, Outcome::Fail { error } if error.message.contains("100 years")),
            "an unbounded retry_after fails the job rather than stranding it"
        );
        let o = outcome_of(
            &job(1, 4),
            Ended::Returned(Err(JobError::snooze(Duration::MAX))),
            &p,
        );
        assert!(matches!(o, Outcome::Fail { .. }));
        assert!(
            outcome(
                &job(1, 4),
                Ended::Cancelled(None),
                Some(StopReason::TakenAway),
                &p
            )
            .is_none(),
            "a job taken away is not ours to finish"
        );
        assert!(matches!(
            outcome(
                &job(1, 4),
                Ended::Cancelled(None),
                Some(StopReason::Replaced),
                &p
            ),
            Some(Outcome::HandBack)
        ));
        let done = Ended::ShutDown(Some(Ok(Value::Bool(true))));
        assert!(
            matches!(outcome_of(&job(1, 4), done, &p), Outcome::Complete { .. }),
            "finished work is kept"
        );
    }

    #[test]
    fn a_handler_may_ask_for_up_to_100_years_and_no_more() {
        let p = policies();
        let asking = |d: Duration, snooze: bool| {
            let mut e = JobError::retryable("later");
            if snooze {
                e.snooze = Some(d);
            } else {
                e.retry_after = Some(d);
            }
            outcome_of(&job(1, 4), Ended::Returned(Err(e)), &p)
        };
        assert!(
            matches!(asking(MAX_DELAY, false), Outcome::Retry { delay, .. } if delay == MAX_DELAY)
        );
        assert!(matches!(asking(MAX_DELAY, true), Outcome::Snooze { delay } if delay == MAX_DELAY));
        let past = MAX_DELAY + Duration::from_millis(1);
        for snooze in [false, true] {
            match asking(past, snooze) {
                Outcome::Fail { error } => {
                    assert_eq!(error.class, ErrorClass::Permanent);
                    assert!(error.message.contains("100 years"), "{}", error.message);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
