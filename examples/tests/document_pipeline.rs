//! Seed 001's validation list, end to end: real nodes on a real database
//! calling the fake AI API over HTTP. Backoff is checked on the manual clock:
//! a case advances it by 2, 4 or 8 s and polls the database every 10 ms
//! until the next attempt has happened, so nothing sleeps for seconds.

use std::sync::Arc;
use std::time::Duration;

use capstan::core::IdleBackoff;
use capstan::{Client, Clock, Config, ErrorClass, Job, JobId, JobState, NodeId, Store, Workers};
use capstan_examples::document_pipeline::{
    self, FakeAiApi, JOB_TIMEOUT, KIND, ProcessDocument, QUEUE, Reply, Summary, error_for_status,
    seed_scripts,
};
use capstan_store_conformance::Harness;

/// The pipeline's configuration with test-speed housekeeping: the scheduler
/// re-checks every 50 ms, shutdown is quick. Retry, timeout and idle polling
/// stay the pipeline's own.
fn test_config() -> Config {
    Config {
        schedule_interval: Duration::from_millis(50),
        heartbeat_interval: Duration::from_millis(100),
        rescue_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(2),
        cancel_grace: Duration::from_millis(200),
        ..document_pipeline::config()
    }
}

/// A client on `store` with the test config and the harness's clock.
fn client_on<H: Harness>(h: &H, store: H::Store, config: Config) -> Client<H::Store> {
    Client::with_config(store, config)
        .expect("valid config")
        .with_clock(Arc::new(h.clock().clone()) as Arc<dyn Clock>)
}

fn client<H: Harness>(h: &H) -> Client<H::Store> {
    client_on(h, h.store().clone(), test_config())
}

fn workers() -> Workers {
    let mut w = Workers::empty();
    w.register(ProcessDocument::new().expect("build the HTTP client"))
        .expect("register the handler");
    w
}

async fn api() -> FakeAiApi {
    FakeAiApi::start(seed_scripts())
        .await
        .expect("start the fake AI API")
}

async fn enqueue<S: Store>(c: &Client<S>, document_id: &str, api: &FakeAiApi) -> JobId {
    let job = document_pipeline::job(document_id, api.url()).unwrap();
    c.enqueue(job).await.expect("enqueue").id
}

/// Promote the due jobs now, as the node's scheduler would on its next pass;
/// how many.
async fn promote<S: Store>(c: &Client<S>) -> u64 {
    c.store()
        .promote_due(&capstan::store::jobs::PromoteDue {
            limit: 1000,
            now: c.clock().pinned(),
        })
        .await
        .expect("promote")
        .promoted
}

/// Poll the job every 10 ms (at most 20 s) until `pred` holds.
async fn wait_for<S: Store>(c: &Client<S>, id: JobId, pred: impl Fn(&Job) -> bool) -> Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let job = c.job(id).await.expect("get job").expect("job exists");
        if pred(&job) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} did not get there within 20 s: {job:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_state<S: Store>(c: &Client<S>, id: JobId, state: JobState) -> Job {
    wait_for(c, id, |j| j.state == state).await
}

/// How long the job waits after its last error before it runs again.
fn gap(job: &Job) -> Duration {
    let last = job.errors.last().expect("the job has an error");
    (job.run_at - last.at)
        .to_std()
        .expect("run_at is after the error")
}

/// The job is waiting (`retryable`) after `attempt` failed with `class` and
/// a message containing `status`, and will run again after `delay`. Move the
/// clock to 1 s short of that (nothing must happen), then to it.
async fn expect_retry_after<H: Harness>(
    h: &H,
    c: &Client<H::Store>,
    id: JobId,
    (attempt, class, status): (i32, ErrorClass, &str),
    delay: Duration,
) {
    let j = wait_for(c, id, |j| {
        j.state == JobState::Retryable && j.attempt == attempt
    })
    .await;
    let e = j.errors.last().expect("an error per failed attempt");
    assert_eq!((e.attempt, e.class), (attempt, class), "{e:?}");
    assert!(
        e.message.contains(status),
        "attempt {attempt}: {}",
        e.message
    );
    assert_eq!(gap(&j), delay, "delay after attempt {attempt}");
    h.clock().advance(delay - Duration::from_secs(1));
    // Not before its time: a promotion at this time moves nothing.
    let promoted = promote(c).await;
    assert_eq!(promoted, 0, "not due {:?} early", Duration::from_secs(1));
    let j = c.job(id).await.expect("get job").expect("job exists");
    assert_eq!(
        (j.state, j.attempt),
        (JobState::Retryable, attempt),
        "not before {delay:?}"
    );
    h.clock().advance(Duration::from_secs(1));
}

pub(crate) async fn flaky_document_completes_on_the_third_call_after_429_and_500<H: Harness>(
    h: &H,
) {
    let (api, c) = (api().await, client(h));
    let id = enqueue(&c, "doc-flaky", &api).await;
    let node = c.node(workers()).expect("node").start();
    let retryable = ErrorClass::Retryable;
    expect_retry_after(h, &c, id, (1, retryable, "429"), Duration::from_secs(2)).await;
    expect_retry_after(h, &c, id, (2, retryable, "500"), Duration::from_secs(4)).await;
    let j = wait_for(&c, id, |j| j.state.is_finished()).await;
    assert_eq!(
        (j.state, j.attempt, j.errors.len()),
        (JobState::Completed, 3, 2),
        "{j:#?}"
    );
    let summary: Summary = serde_json::from_value(j.result.expect("a result")).expect("a summary");
    assert_eq!(summary.document_id, "doc-flaky");
    assert!(summary.summary.contains("call 3"), "{}", summary.summary);
    assert_eq!(api.calls("doc-flaky"), 3);
    node.shutdown().await.expect("node stops");
    api.shutdown().await;
}

pub(crate) async fn unauthorized_document_fails_at_once_without_a_retry<H: Harness>(h: &H) {
    let (api, c) = (api().await, client(h));
    let ok = enqueue(&c, "doc-ok", &api).await;
    let unauthorized = enqueue(&c, "doc-unauthorized", &api).await;
    let node = c.node(workers()).expect("node").start();
    let j = wait_for_state(&c, ok, JobState::Completed).await;
    assert_eq!((j.attempt, j.errors.len()), (1, 0));
    let j = wait_for(&c, unauthorized, |j| j.state.is_finished()).await;
    assert_eq!((j.state, j.attempt), (JobState::Failed, 1), "{j:#?}");
    let e = &j.errors[0];
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("401 Unauthorized"), "{}", e.message);
    // A minute later, still one call: a failed job is never due again.
    h.clock().advance(Duration::from_secs(60));
    assert_eq!(promote(&c).await, 0);
    assert_eq!((api.calls("doc-unauthorized"), api.calls("doc-ok")), (1, 1));
    let j = c.job(unauthorized).await.expect("get").expect("exists");
    assert_eq!((j.state, j.attempt), (JobState::Failed, 1));
    node.shutdown().await.expect("node stops");
}

pub(crate) async fn down_api_fails_a_document_after_4_attempts_2_4_8_seconds_apart<H: Harness>(
    h: &H,
) {
    let (api, c) = (api().await, client(h));
    let id = enqueue(&c, "doc-down", &api).await;
    assert_eq!(
        c.job(id).await.expect("get").expect("exists").max_attempts,
        4
    );
    let node = c.node(workers()).expect("node").start();
    for (attempt, delay) in [(1, 2), (2, 4), (3, 8)] {
        let failed = (attempt, ErrorClass::Retryable, "503 Service Unavailable");
        expect_retry_after(h, &c, id, failed, Duration::from_secs(delay)).await;
    }
    let j = wait_for(&c, id, |j| j.state.is_finished()).await;
    assert_eq!((j.state, j.attempt), (JobState::Failed, 4), "{j:#?}");
    let attempts: Vec<i32> = j.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3, 4], "one error recorded per attempt");
    assert!(
        j.errors
            .iter()
            .all(|e| e.class == ErrorClass::Retryable && e.message.contains("503"))
    );
    assert_eq!(api.calls("doc-down"), 4);
    node.shutdown().await.expect("node stops");
}

pub(crate) async fn retry_after_of_a_429_replaces_the_backoff<H: Harness>(h: &H) {
    let (api, c) = (api().await, client(h));
    let id = enqueue(&c, "doc-throttled", &api).await;
    let node = c.node(workers()).expect("node").start();
    // Retry-After: 7 on the 429, not the policy's 2 s.
    let throttled = (1, ErrorClass::Retryable, "429");
    expect_retry_after(h, &c, id, throttled, Duration::from_secs(7)).await;
    let j = wait_for(&c, id, |j| j.state.is_finished()).await;
    assert_eq!((j.state, j.attempt), (JobState::Completed, 2), "{j:#?}");
    assert_eq!(api.calls("doc-throttled"), 2);
    node.shutdown().await.expect("node stops");
}

pub(crate) async fn unreachable_api_is_retried_after_the_backoff<H: Harness>(h: &H) {
    let c = client(h);
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let job = document_pipeline::job("doc-ok", &format!("http://127.0.0.1:{port}")).unwrap();
    let id = c.enqueue(job).await.expect("enqueue").id;
    let node = c.node(workers()).expect("node").start();
    let j = wait_for(&c, id, |j| {
        j.state != JobState::Available && !j.errors.is_empty()
    })
    .await;
    assert_eq!((j.state, j.attempt), (JobState::Retryable, 1), "{j:#?}");
    let e = &j.errors[0];
    assert_eq!(e.class, ErrorClass::Retryable);
    assert!(e.message.contains("did not answer"), "{}", e.message);
    assert_eq!(gap(&j), Duration::from_secs(2));
    node.shutdown().await.expect("node stops");
}

pub(crate) async fn each_attempt_runs_under_a_five_minute_timeout_and_lease<H: Harness>(h: &H) {
    let hung = vec![Reply::ok().after(Duration::from_secs(600))];
    let api = FakeAiApi::start([("doc-hung", hung)])
        .await
        .expect("start the fake AI API");
    let c = client(h);
    assert_eq!(c.config().default_timeout, Duration::from_secs(300));
    assert_eq!(JOB_TIMEOUT, Duration::from_secs(300));
    let id = enqueue(&c, "doc-hung", &api).await;
    let node = c.node(workers()).expect("node").start();
    let j = wait_for_state(&c, id, JobState::Running).await;
    assert_eq!(j.timeout_ms, None, "the job takes the pipeline's timeout");
    let started = j.attempted_at.expect("a running job has started");
    let lease = j.lease_expires_at.expect("a running job holds a lease") - started;
    let expected = Duration::from_secs(300) + c.config().lease_grace;
    assert_eq!(
        lease.to_std().expect("positive"),
        expected,
        "timeout + grace"
    );
    // A user cancel reaches the handler, which stops waiting for the API.
    c.cancel(id).await.expect("cancel");
    let j = wait_for(&c, id, |j| j.state.is_finished()).await;
    assert_eq!(j.state, JobState::Cancelled, "{j:#?}");
    assert_eq!(api.calls("doc-hung"), 1);
    node.shutdown().await.expect("node stops");
}

pub(crate) async fn a_call_outliving_its_timeout_is_cancelled_and_retried<H: Harness>(h: &H) {
    let hung = vec![Reply::ok().after(Duration::from_secs(600))];
    let api = FakeAiApi::start([("doc-hung", hung)])
        .await
        .expect("start the fake AI API");
    let c = client(h);
    let job = document_pipeline::job("doc-hung", api.url())
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let id = c.enqueue(job).await.expect("enqueue").id;
    let started = tokio::time::Instant::now();
    let node = c.node(workers()).expect("node").start();
    let j = wait_for(&c, id, |j| j.state == JobState::Retryable).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the 600 s call was cut short"
    );
    assert_eq!(
        (j.attempt, j.errors[0].class),
        (1, ErrorClass::Timeout),
        "{j:#?}"
    );
    assert!(
        j.errors[0].message.contains("300 ms"),
        "{}",
        j.errors[0].message
    );
    assert_eq!(
        gap(&j),
        Duration::from_secs(2),
        "a timeout is retried on the policy"
    );
    assert_eq!(api.calls("doc-hung"), 1);
    node.shutdown().await.expect("node stops");
}

pub(crate) async fn several_nodes_process_each_document_exactly_once<H: Harness>(h: &H) {
    const DOCUMENTS: usize = 60;
    let (api, c) = (api().await, client(h));
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        let config = test_config().with_node_id(NodeId(name.to_owned()));
        let other = client_on(h, h.connect_again().await, config);
        nodes.push(other.node(workers()).expect("node").start());
    }
    let docs: Vec<String> = (0..DOCUMENTS).map(|i| format!("doc-batch-{i}")).collect();
    let jobs = docs
        .iter()
        .map(|d| document_pipeline::job(d, api.url()).unwrap())
        .collect();
    let ids: Vec<JobId> = c
        .enqueue_many(jobs)
        .await
        .expect("enqueue")
        .iter()
        .map(|e| e.id)
        .collect();
    for id in &ids {
        let j = wait_for(&c, *id, |j| j.state.is_finished()).await;
        assert_eq!((j.state, j.attempt), (JobState::Completed, 1), "{j:#?}");
    }
    for node in nodes {
        node.shutdown().await.expect("node stops");
    }
    let twice: Vec<(&String, usize)> = docs
        .iter()
        .map(|d| (d, api.calls(d)))
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        twice.is_empty(),
        "documents not called exactly once: {twice:?}"
    );
    assert_eq!(api.total_calls(), DOCUMENTS);
}

#[test]
fn the_pipeline_retries_4_times_in_all_after_2_4_8_seconds_without_jitter() {
    let config = document_pipeline::config();
    config.validate().expect("the pipeline's config is valid");
    let policy = config.retry.for_job(KIND, QUEUE);
    assert_eq!(policy, &document_pipeline::retry_policy());
    assert_eq!((policy.max_attempts, policy.jitter), (4, 0.0));
    for (attempt, secs) in [(1, 2), (2, 4), (3, 8)] {
        // No jitter: whatever the random draw, the delay is exact.
        for unit in [0.0, 0.5, 0.999] {
            assert_eq!(policy.delay_after(attempt, unit), Duration::from_secs(secs));
        }
    }
    assert_eq!(config.default_timeout, Duration::from_secs(5 * 60));
    assert_eq!(
        config
            .queues
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>(),
        vec![QUEUE]
    );
}

#[test]
fn idle_polling_backs_off_from_2_to_30_seconds_by_half_and_resets_on_work() {
    let c = document_pipeline::config();
    assert_eq!(
        (c.poll_initial, c.poll_max, c.poll_multiplier),
        (Duration::from_secs(2), Duration::from_secs(30), 1.5)
    );
    let mut backoff = IdleBackoff::new(c.poll_initial, c.poll_max, c.poll_multiplier);
    let waits: Vec<u128> = (0..9).map(|_| backoff.next_wait().as_millis()).collect();
    assert_eq!(
        waits,
        vec![2000, 3000, 4500, 6750, 10125, 15187, 22781, 30000, 30000]
    );
    backoff.reset();
    assert_eq!(backoff.next_wait(), Duration::from_secs(2));
}

#[test]
fn http_answers_map_to_retry_or_fail() {
    for status in [429, 500, 502, 503, 504] {
        let e = error_for_status(status, None, "");
        assert_eq!(
            (e.class(), e.retry_after_delay()),
            (ErrorClass::Retryable, None),
            "{status}"
        );
    }
    let e = error_for_status(429, Some(Duration::from_secs(7)), "slow down");
    assert_eq!(e.class(), ErrorClass::Retryable);
    assert_eq!(e.retry_after_delay(), Some(Duration::from_secs(7)));
    assert!(
        e.message().contains("429 Too Many Requests: slow down"),
        "{}",
        e.message()
    );
    for status in [400, 401, 403, 404, 422] {
        let e = error_for_status(status, Some(Duration::from_secs(7)), "");
        assert_eq!(e.class(), ErrorClass::Permanent, "{status} is not retried");
    }
}
