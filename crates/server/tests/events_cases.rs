//! Live status through a real socket: a job's event stream shows each
//! change, from another server too, and resumes without missing the end; a
//! queue's stream shows its jobs; a wait wakes on a change made elsewhere;
//! idle streams send keep-alive comments and end cleanly on shutdown.

use std::time::Duration;

use capstan::Store;
use capstan::runtime::changes;
use capstan::store::Received;
use capstan_server::ServerConfig;
use capstan_store_conformance::Harness;
use serde_json::{Value, json};

use crate::support::{Api, Sse, start};

async fn enqueue(api: &Api, queue: &str) -> i64 {
    let r = api
        .post("/v1/jobs", json!({"kind": "k", "queue": queue}))
        .await;
    r.body["job"]["id"].as_i64().unwrap()
}

async fn claim(api: &Api, queue: &str, worker: &str) -> Value {
    let r = api
        .post(
            &format!("/v1/queues/{queue}/claim"),
            json!({"worker": worker}),
        )
        .await;
    r.body["jobs"][0].clone()
}

pub(crate) async fn a_job_stream_shows_each_change_and_resumes_without_missing_the_end<
    H: Harness,
>(
    h: &H,
) {
    let a = start(h, ServerConfig::default()).await;
    // A second server on the same database: another node.
    let b = start(h, ServerConfig::default()).await;
    let id = enqueue(&a, "q").await;
    let mut s = Sse::open(&a, &format!("/v1/jobs/{id}/events"), None).await;
    let first = s.next().await;
    assert_eq!(
        (first.event.as_str(), &first.data["state"]),
        ("job", &json!("available"))
    );
    // Everything below happens through the other server.
    let job = claim(&b, "q", "w1").await;
    let lease = job["lease"].as_str().unwrap();
    let running = s.next().await;
    assert_eq!(
        (&running.data["state"], &running.data["attempt"]),
        (&json!("running"), &json!(1))
    );
    b.post(
        &format!("/v1/jobs/{id}/heartbeat"),
        json!({"lease": lease, "progress": {"pct": 50}}),
    )
    .await;
    let progress = s.next().await;
    assert_eq!(progress.data["progress"], json!({"pct": 50}));
    assert_ne!(progress.id, running.id, "each version has its own id");
    b.post(
        &format!("/v1/jobs/{id}/complete"),
        json!({"lease": lease, "result": "done"}),
    )
    .await;
    let done = s.next().await;
    assert_eq!(
        (&done.data["state"], &done.data["result"]),
        (&json!("completed"), &json!("done"))
    );
    drop(s);
    // A client that saw "running" and reconnects gets the final state first.
    let mut again = Sse::open(&a, &format!("/v1/jobs/{id}/events"), Some(&running.id)).await;
    let e = again.next().await;
    assert_eq!((&e.data["state"], &e.id), (&json!("completed"), &done.id));
    // One that saw the end gets nothing new.
    let mut seen = Sse::open(&a, &format!("/v1/jobs/{id}/events"), Some(&done.id)).await;
    assert!(seen.next_within(Duration::from_millis(600)).await.is_none());
    let missing = a.get("/v1/jobs/424242/events").await;
    assert_eq!((missing.status, missing.problem()), (404, "not-found"));
    if h.url().starts_with("sqlite") {
        return; // two stores on one file in one process: no hints between them
    }
    // The other server heard that someone watches, and says what changed
    // (the stream above did not wait for its fallback look to see it).
    for _ in 0..200 {
        if b.client.hints().is_watched() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.client.hints().is_watched());
    let mut hints = a
        .client
        .store()
        .subscribe(&[changes::CHANGES])
        .await
        .unwrap();
    let id = enqueue(&a, "q").await;
    claim(&b, "q", "w2").await;
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Received::Notification(n)) = hints.recv().await
                && changes::parse(&n.payload).contains(&capstan::JobId(id))
            {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "the claim on the other server sent a hint");
}

pub(crate) async fn a_queue_stream_shows_its_jobs_and_asks_for_a_resync_on_reconnect<H: Harness>(
    h: &H,
) {
    let api = start(h, ServerConfig::default()).await;
    let mut s = Sse::open(&api, "/v1/queues/q/events", None).await;
    let id = enqueue(&api, "q").await;
    enqueue(&api, "elsewhere").await;
    let e = s.next().await;
    assert_eq!(e.event, "available");
    let job = claim(&api, "q", "w1").await;
    assert_eq!(job["id"].as_i64(), Some(id));
    let e = s.next().await;
    assert_eq!(
        (e.event.as_str(), &e.data["id"], &e.data["state"]),
        ("job", &json!(id), &json!("running"))
    );
    api.post(
        &format!("/v1/jobs/{id}/complete"),
        json!({"lease": job["lease"]}),
    )
    .await;
    let e = s.next().await;
    assert_eq!(e.data["state"], "completed");
    // Jobs of other queues never show.
    let other = claim(&api, "elsewhere", "w1").await;
    api.post(
        &format!("/v1/jobs/{}/complete", other["id"]),
        json!({"lease": other["lease"]}),
    )
    .await;
    assert!(s.next_within(Duration::from_millis(600)).await.is_none());
    let mut again = Sse::open(&api, "/v1/queues/q/events", Some(&e.id)).await;
    assert_eq!(again.next().await.event, "resync");
    let bad = api.get("/v1/queues/no%20such/events").await;
    assert_eq!(bad.status, 422);
}

pub(crate) async fn a_wait_wakes_on_a_change_made_elsewhere_and_streams_end_on_shutdown<
    H: Harness,
>(
    h: &H,
) {
    let a = start(
        h,
        ServerConfig {
            keep_alive: Duration::from_millis(100),
            ..ServerConfig::default()
        },
    )
    .await;
    let b = start(h, ServerConfig::default()).await;
    let id = enqueue(&a, "q").await;
    let waiter = {
        let http = a.http.clone();
        let url = format!("{}/v1/jobs/{id}/wait?timeout=20s", a.base);
        tokio::spawn(async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let job = claim(&b, "q", "w1").await;
    b.post(
        &format!("/v1/jobs/{id}/fail"),
        json!({"lease": job["lease"], "error": "no", "permanent": true}),
    )
    .await;
    let (status, body) = waiter.await.unwrap();
    assert_eq!((status, &body["state"]), (200, &json!("failed")));
    // Shutdown ends open streams cleanly, and the server stops.
    let mut s = Sse::open(&a, &format!("/v1/jobs/{id}/events"), None).await;
    assert_eq!(s.next().await.data["state"], "failed");
    // Nothing more to say: keep-alive comments, every server.keep_alive.
    assert!(s.next_within(Duration::from_millis(450)).await.is_none());
    assert!(
        s.keep_alives >= 2,
        "{} keep-alives in 450 ms at one per 100 ms",
        s.keep_alives
    );
    assert!(!s.ended);
    a.stop.cancel();
    assert!(s.next_within(Duration::from_secs(10)).await.is_none());
    assert!(s.ended, "the server ended the stream, within 10 s");
    let Api { task, .. } = a;
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
