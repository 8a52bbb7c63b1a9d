//! The pull protocol through a real socket: claim with leases, heartbeat,
//! complete, fail, batches; a stale lease is 409 and changes nothing; a
//! worker that stops calling loses its jobs; a waiting claim wakes on
//! enqueue and ends on shutdown.

use std::time::{Duration, Instant};

use capstan::core::Clock;
use capstan::store::jobs::Rescue;
use capstan::{JobId, JobStore};
use capstan_server::ServerConfig;
use capstan_store_conformance::Harness;
use serde_json::{Value, json};

use crate::support::{Api, start};

async fn enqueue(api: &Api, queue: &str, kind: &str) -> i64 {
    let r = api
        .post(
            "/v1/jobs",
            json!({"kind": kind, "queue": queue, "max_attempts": 2}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["job"]["id"].as_i64().unwrap()
}

async fn claim(api: &Api, queue: &str, body: Value) -> Vec<Value> {
    let r = api.post(&format!("/v1/queues/{queue}/claim"), body).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["jobs"].as_array().unwrap().clone()
}

fn lease(job: &Value) -> (i64, String) {
    (
        job["id"].as_i64().unwrap(),
        job["lease"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn a_worker_claims_beats_completes_and_fails_by_lease<H: Harness>(h: &H) {
    let api = start(h, ServerConfig::default()).await;
    let a = enqueue(&api, "q", "k").await;
    let b = enqueue(&api, "q", "k").await;
    let c = enqueue(&api, "q", "k").await;
    let jobs = claim(&api, "q", json!({"worker": "w1", "max": 2})).await;
    assert_eq!(jobs.len(), 2);
    let (ja, la) = lease(&jobs[0]);
    let (jb, lb) = lease(&jobs[1]);
    assert_eq!((ja, jb), (a, b), "claim order");
    assert_eq!(jobs[0]["attempt"], 1);
    assert!(jobs[0]["lease_expires_at"].is_string());
    // Heartbeat with progress: recorded, lease extended.
    let beat = api
        .post(
            &format!("/v1/jobs/{a}/heartbeat"),
            json!({"lease": la, "progress": {"done": 5}}),
        )
        .await;
    assert_eq!(
        (beat.status, &beat.body["cancel_requested"]),
        (200, &json!(false)),
        "{beat:?}"
    );
    let job = api.get(&format!("/v1/jobs/{a}")).await.body;
    assert_eq!(job["progress"], json!({"done": 5}));
    assert_eq!(job["node_id"], "w1");
    // A wrong lease: 409, nothing changed.
    let wrong = api
        .post(
            &format!("/v1/jobs/{a}/complete"),
            json!({"lease": "0000000000000000", "result": 1}),
        )
        .await;
    assert_eq!((wrong.status, wrong.problem()), (409, "stale-lease"));
    assert_eq!(
        api.get(&format!("/v1/jobs/{a}")).await.body["state"],
        "running"
    );
    // Complete: done; the same lease again: 409.
    let done = api
        .post(
            &format!("/v1/jobs/{a}/complete"),
            json!({"lease": la, "result": {"ok": true}}),
        )
        .await;
    assert_eq!(
        (done.status, &done.body["state"]),
        (200, &json!("completed"))
    );
    let job = api.get(&format!("/v1/jobs/{a}")).await.body;
    assert_eq!(
        (&job["state"], &job["result"]),
        (&json!("completed"), &json!({"ok": true}))
    );
    let again = api
        .post(&format!("/v1/jobs/{a}/complete"), json!({"lease": la}))
        .await;
    assert_eq!((again.status, again.problem()), (409, "stale-lease"));
    let late_beat = api
        .post(&format!("/v1/jobs/{a}/heartbeat"), json!({"lease": la}))
        .await;
    assert_eq!(late_beat.status, 409);
    // Fail: retried (an attempt is left) with the error in the history.
    let failed = api
        .post(
            &format!("/v1/jobs/{b}/fail"),
            json!({"lease": lb, "error": "HTTP 503", "retry_after": "0s"}),
        )
        .await;
    assert_eq!(failed.status, 200, "{failed:?}");
    assert_eq!(failed.body["state"], "available");
    assert_eq!(failed.body["errors"][0]["message"], "HTTP 503");
    assert_eq!(failed.body["errors"][0]["class"], "retryable");
    let stale_fail = api
        .post(
            &format!("/v1/jobs/{b}/fail"),
            json!({"lease": lb, "error": "again"}),
        )
        .await;
    assert_eq!(
        (stale_fail.status, stale_fail.problem()),
        (409, "stale-lease")
    );
    // The second attempt, failed permanently: failed for good.
    let jobs = claim(&api, "q", json!({"worker": "w1", "max": 10})).await;
    let ids: Vec<i64> = jobs.iter().map(|j| j["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![b, c]);
    let (_, lb2) = lease(&jobs[0]);
    let (_, lc) = lease(&jobs[1]);
    let gone = api
        .post(
            &format!("/v1/jobs/{b}/fail"),
            json!({"lease": lb2, "error": "bad input", "permanent": true}),
        )
        .await;
    assert_eq!((gone.status, &gone.body["state"]), (200, &json!("failed")));
    assert_eq!(gone.body["errors"][1]["class"], "permanent");
    // Batches: one current lease, one stale, one of no job, and the
    // current one again (extended once, answered twice).
    let beats = api
        .post(
            "/v1/heartbeat",
            json!({"worker": "w1", "jobs": [
                {"id": c, "lease": lc, "progress": 1},
                {"id": b, "lease": lb2},
                {"id": 999_999, "lease": lc},
                {"id": c, "lease": lc},
            ]}),
        )
        .await;
    assert_eq!(beats.status, 200);
    let statuses: Vec<&str> = beats.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["extended", "fenced", "fenced", "extended"]);
    // The lease now runs the job's timeout plus the lease grace from now.
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(beats.body["jobs"][0]["lease_expires_at"].clone()).unwrap();
    let term = capstan::Config::DEFAULT_TIMEOUT + capstan::Config::DEFAULT_LEASE_GRACE;
    let term = chrono::Duration::from_std(term).unwrap();
    assert_eq!(
        expires,
        h.clock().now() + term,
        "the harness's clock stands still"
    );
    assert_eq!(api.get(&format!("/v1/jobs/{c}")).await.body["progress"], 1);
    let batch = api
        .post(
            "/v1/complete",
            json!({"jobs": [{"id": c, "lease": lc, "result": 7}, {"id": b, "lease": lb2}]}),
        )
        .await;
    assert_eq!(batch.status, 200);
    assert_eq!(batch.body, json!({"completed": [c], "fenced": [b]}));
    assert_eq!(
        api.get(&format!("/v1/jobs/{b}")).await.body["state"],
        "failed",
        "untouched"
    );
    // Unknown job: 404; a result too big: 422 and nothing changed.
    let unknown = api
        .post("/v1/jobs/999999/complete", json!({"lease": lc}))
        .await;
    assert_eq!((unknown.status, unknown.problem()), (404, "not-found"));
    let d = enqueue(&api, "q", "k").await;
    let (_, ld) = lease(&claim(&api, "q", json!({"worker": "w1"})).await[0]);
    let big = json!("x".repeat(capstan::core::limits::MAX_RESULT_BYTES + 1));
    let r = api
        .post(
            &format!("/v1/jobs/{d}/complete"),
            json!({"lease": ld, "result": big}),
        )
        .await;
    assert_eq!(
        (r.status, r.problem(), &r.body["field"]),
        (422, "invalid", &json!("result"))
    );
    assert_eq!(
        api.get(&format!("/v1/jobs/{d}")).await.body["state"],
        "running"
    );
    // Release: back in its queue, the attempt given back; then 409.
    let r = api
        .post(&format!("/v1/jobs/{d}/release"), json!({"lease": ld}))
        .await;
    assert_eq!(
        (r.status, &r.body["state"]),
        (200, &json!("available")),
        "{r:?}"
    );
    let job = api.get(&format!("/v1/jobs/{d}")).await.body;
    assert_eq!(
        (&job["attempt"], &job["node_id"]),
        (&json!(0), &Value::Null)
    );
    let r = api
        .post(&format!("/v1/jobs/{d}/release"), json!({"lease": ld}))
        .await;
    assert_eq!((r.status, r.problem()), (409, "stale-lease"));
    // Claim parameters are checked.
    for (body, field) in [
        (json!({"worker": "w 1"}), "worker"),
        (json!({"worker": "w1", "max": 0}), "max"),
        (json!({"worker": "w1", "kinds": []}), "kinds"),
        (json!({"worker": "w1", "kinds": ["*"]}), "kinds"),
    ] {
        let r = api.post("/v1/queues/q/claim", body.clone()).await;
        assert_eq!(
            (r.status, r.problem(), &r.body["field"]),
            (422, "invalid", &json!(field)),
            "{body}"
        );
    }
    let r = api
        .post("/v1/queues/bad%20queue/claim", json!({"worker": "w1"}))
        .await;
    assert_eq!((r.status, &r.body["field"]), (422, &json!("queue")));
}

/// A worker silent for its timeout is dead: the rescuer takes its job back,
/// another worker runs it, and the first one's late complete is 409.
pub(crate) async fn a_worker_that_stops_calling_loses_its_jobs_to_the_next<H: Harness>(h: &H) {
    let api = start(h, ServerConfig::default()).await;
    let id = enqueue(&api, "q", "k").await;
    let (_, old) = lease(&claim(&api, "q", json!({"worker": "w1", "kinds": ["k"]})).await[0]);
    let nodes = api.get("/v1/nodes").await.body;
    let w1 = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "w1")
        .unwrap()
        .clone();
    assert_eq!(
        (&w1["role"], &w1["live"], &w1["queues"], &w1["kinds"]),
        (&json!("worker"), &json!(true), &json!(["q"]), &json!(["k"]))
    );
    let rescue = |api: &Api| {
        let store = api.client.store().clone();
        let now = h.clock().now();
        async move {
            store
                .rescue(&Rescue {
                    rescuer: None,
                    limit: 100,
                    now: Some(now),
                })
                .await
                .unwrap()
        }
    };
    // Within its timeout nothing is taken.
    h.clock().advance(Duration::from_secs(50));
    assert!(rescue(&api).await.retried.is_empty());
    h.clock().advance(Duration::from_secs(11));
    let report = rescue(&api).await;
    assert_eq!(report.retried, vec![JobId(id)]);
    let nodes = api.get("/v1/nodes").await.body;
    assert!(
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["id"] != "w1"),
        "its row is gone"
    );
    let jobs = claim(&api, "q", json!({"worker": "w2"})).await;
    let (_, new) = lease(&jobs[0]);
    assert_eq!(jobs[0]["attempt"], 2);
    let late = api
        .post(
            &format!("/v1/jobs/{id}/complete"),
            json!({"lease": old, "result": "late"}),
        )
        .await;
    assert_eq!((late.status, late.problem()), (409, "stale-lease"));
    assert!(late.body["detail"].as_str().unwrap().contains("attempt 2"));
    let ok = api
        .post(
            &format!("/v1/jobs/{id}/complete"),
            json!({"lease": new, "result": "w2"}),
        )
        .await;
    assert_eq!(ok.status, 200);
    let job = api.get(&format!("/v1/jobs/{id}")).await.body;
    assert_eq!(
        (&job["result"], &job["errors"][0]["class"]),
        (&json!("w2"), &json!("rescued"))
    );
    // A worker that keeps heartbeating keeps its job past its timeout.
    let id = enqueue(&api, "q", "k").await;
    let (_, l) = lease(&claim(&api, "q", json!({"worker": "w3"})).await[0]);
    for _ in 0..4 {
        h.clock().advance(Duration::from_secs(30));
        let b = api
            .post(
                "/v1/heartbeat",
                json!({"worker": "w3", "jobs": [{"id": id, "lease": l}]}),
            )
            .await;
        assert_eq!(b.body["jobs"][0]["status"], "extended");
        assert!(rescue(&api).await.retried.is_empty());
    }
}

/// A claim that waits wakes when a job is enqueued (not at its fallback),
/// returns nothing when its wait ends, and ends at once on shutdown.
pub(crate) async fn a_waiting_claim_wakes_on_enqueue_and_ends_on_shutdown<H: Harness>(h: &H) {
    let api = start(h, ServerConfig::default()).await;
    let empty = claim(&api, "q", json!({"worker": "w1", "wait": "200ms"})).await;
    assert!(empty.is_empty());
    let waiting = {
        let http = api.http.clone();
        let url = format!("{}/v1/queues/q/claim", api.base);
        tokio::spawn(async move {
            let started = Instant::now();
            let r = http
                .post(url)
                .json(&json!({"worker": "w1", "wait": "25s"}))
                .send()
                .await
                .unwrap();
            (started.elapsed(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = enqueue(&api, "q", "k").await;
    let (waited, body) = waiting.await.unwrap();
    assert_eq!(body["jobs"][0]["id"].as_i64(), Some(id));
    // Woken by the enqueue, well before the 5 s fallback look.
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    // Shutdown: a waiting claim answers (empty) and the server stops.
    let waiting = {
        let http = api.http.clone();
        let url = format!("{}/v1/queues/q/claim", api.base);
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({"worker": "w1", "wait": "25s"}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    api.stop.cancel();
    let r = waiting.await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["jobs"], json!([]));
    let Api { task, base, .. } = api;
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "no longer accepting"
    );
}

/// A worker name that is a live node's id is refused.
pub(crate) async fn a_worker_name_of_a_live_node_is_refused<H: Harness>(h: &H) {
    let api = start(h, ServerConfig::default()).await;
    let node = api.client.node(capstan::Workers::new()).unwrap().start();
    // Once the node has registered, its id cannot be a worker's name.
    let id = node.id().to_string();
    for _ in 0..200 {
        let nodes = api.get("/v1/nodes").await.body;
        if nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == id.as_str())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = api
        .post("/v1/queues/default/claim", json!({"worker": id}))
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(
        (r.problem(), &r.body["field"]),
        ("worker-name-in-use", &json!("worker"))
    );
    node.shutdown().await.unwrap();
}

/// A worker's `fail` with the HTTP status its own call got follows the push
/// queues' table: 503 retried (after its `retry_after`), 410 and 404 failed
/// for good, a 2xx or a non-status refused; the status is in the history.
pub(crate) async fn a_fail_with_an_http_status_follows_the_push_table<H: Harness>(h: &H) {
    let api = start(h, ServerConfig::default()).await;
    let mut ends = Vec::new();
    for (status, retry_after) in [(503, Some("0s")), (500, None), (410, None), (404, None)] {
        let id = enqueue(&api, "st", "k").await;
        let (_, l) = lease(&claim(&api, "st", json!({"worker": "w1"})).await[0]);
        let mut body = json!({"lease": l, "error": "upstream said no", "status": status});
        if let Some(d) = retry_after {
            body["retry_after"] = json!(d);
        }
        let r = api.post(&format!("/v1/jobs/{id}/fail"), body).await;
        assert_eq!(r.status, 200, "{r:?}");
        ends.push((
            status,
            r.body["state"].as_str().unwrap().to_owned(),
            r.body["errors"][0]["class"].as_str().unwrap().to_owned(),
            r.body["errors"][0]["message"].as_str().unwrap().to_owned(),
        ));
        // (Clear the queue: a retried job would be claimed next.)
        api.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    }
    let said = |s| format!("HTTP {s}: upstream said no");
    assert_eq!(
        ends,
        [
            (503, "available".into(), "retryable".into(), said(503)),
            (500, "retryable".into(), "retryable".into(), said(500)),
            (410, "failed".into(), "permanent".into(), said(410)),
            (404, "failed".into(), "permanent".into(), said(404)),
        ]
    );
    // A success is not a failure, and a status is 100 to 599: 422, nothing
    // changed.
    let id = enqueue(&api, "st", "k").await;
    let (_, l) = lease(&claim(&api, "st", json!({"worker": "w1"})).await[0]);
    for status in [200, 700] {
        let r = api
            .post(
                &format!("/v1/jobs/{id}/fail"),
                json!({"lease": l, "error": "x", "status": status}),
            )
            .await;
        assert_eq!((r.status, r.problem()), (422, "invalid"), "{status}");
        assert_eq!(r.body["field"], "status");
    }
    assert_eq!(
        api.get(&format!("/v1/jobs/{id}")).await.body["state"],
        "running"
    );
}
