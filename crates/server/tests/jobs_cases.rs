//! `/v1/jobs` through a real socket: enqueue, keys, batches, pages,
//! cancel, retry, wait; and every refusal is a problem that changed nothing.

use std::time::Duration;

use capstan_server::ServerConfig;
use capstan_store_conformance::Harness;
use serde_json::{Value, json};

use crate::support::start;

pub(crate) async fn jobs_are_enqueued_read_paged_cancelled_and_retried<H: Harness>(h: &H) {
    let api = start(h, ServerConfig::default()).await;
    let one = api
        .post(
            "/v1/jobs",
            json!({"kind": "mail.send", "args": {"to": "a@b"}, "queue": "mail",
                   "priority": 3, "tags": ["t1"], "idempotency_key": "k-1", "delay": "0s",
                   "max_attempts": 4, "timeout": "30s"}),
        )
        .await;
    assert_eq!(one.status, 201, "{one:?}");
    assert_eq!(one.body["existing"], false);
    let job = &one.body["job"];
    let id = job["id"].as_i64().unwrap();
    assert_eq!(
        (
            &job["kind"],
            &job["queue"],
            &job["priority"],
            &job["max_attempts"],
            &job["timeout_ms"],
            &job["state"]
        ),
        (
            &json!("mail.send"),
            &json!("mail"),
            &json!(3),
            &json!(4),
            &json!(30_000),
            &json!("available")
        )
    );
    assert!(
        job.get("lease_token").is_none(),
        "a lease is shown to its worker only"
    );
    // The same idempotency key: the same job, 200.
    let again = api
        .post(
            "/v1/jobs",
            json!({"kind": "mail.send", "queue": "mail", "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!((again.status, &again.body["existing"]), (200, &json!(true)));
    assert_eq!(again.body["job"]["id"].as_i64(), Some(id));
    // A batch, all new: 201, one entry per job, in order.
    let batch = api
        .post(
            "/v1/jobs",
            json!({"jobs": [{"kind": "a", "tags": ["t1"]}, {"kind": "b"}, {"kind": "c", "tags": ["t1"]}]}),
        )
        .await;
    assert_eq!(batch.status, 201, "{batch:?}");
    let ids: Vec<i64> = batch.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    // Read one, and an unknown one.
    let got = api.get(&format!("/v1/jobs/{}", ids[1])).await;
    assert_eq!((got.status, &got.body["kind"]), (200, &json!("b")));
    let missing = api.get("/v1/jobs/999999").await;
    assert_eq!((missing.status, missing.problem()), (404, "not-found"));
    // Pages of two, newest first; an enqueue between pages shifts nothing.
    let page1 = api.get("/v1/jobs?limit=2").await;
    assert_eq!(listed(&page1.body), vec![ids[2], ids[1]]);
    let cursor = page1.body["next_cursor"].as_str().unwrap().to_owned();
    api.post("/v1/jobs", json!({"kind": "late"})).await;
    let page2 = api.get(&format!("/v1/jobs?limit=2&cursor={cursor}")).await;
    assert_eq!(listed(&page2.body), vec![ids[0], id]);
    let page3 = api
        .get(&format!(
            "/v1/jobs?limit=2&cursor={}",
            page2.body["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(listed(&page3.body), Vec::<i64>::new());
    assert!(page3.body.get("next_cursor").is_none());
    let tagged = api.get("/v1/jobs?tag=t1&queue=default").await;
    assert_eq!(listed(&tagged.body), vec![ids[2], ids[0]]);
    let by_kind = api.get("/v1/jobs?kind=b&state=available").await;
    assert_eq!(listed(&by_kind.body), vec![ids[1]]);
    // Cancel a waiting job, then again: 409, it is finished.
    let cancelled = api
        .post(&format!("/v1/jobs/{}/cancel", ids[0]), json!({}))
        .await;
    assert_eq!(
        (
            cancelled.status,
            &cancelled.body["outcome"],
            &cancelled.body["job"]["state"]
        ),
        (200, &json!("cancelled"), &json!("cancelled"))
    );
    let twice = api
        .post(&format!("/v1/jobs/{}/cancel", ids[0]), json!({}))
        .await;
    assert_eq!((twice.status, twice.problem()), (409, "invalid-transition"));
    // Retry brings it back.
    let retried = api
        .post(&format!("/v1/jobs/{}/retry", ids[0]), json!({}))
        .await;
    assert_eq!(
        (retried.status, &retried.body["state"]),
        (200, &json!("available"))
    );
    assert_eq!(
        api.post("/v1/jobs/999999/retry", json!({})).await.status,
        404
    );
}

fn listed(page: &Value) -> Vec<i64> {
    page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

pub(crate) async fn a_refused_request_is_a_problem_with_its_status_and_changes_nothing<
    H: Harness,
>(
    h: &H,
) {
    let api = start(
        h,
        ServerConfig {
            max_body_bytes: 4096,
            ..ServerConfig::default()
        },
    )
    .await;
    // (content type, body, status, problem type, field)
    type Case<'a> = (Option<&'a str>, Vec<u8>, u16, &'a str, Option<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            None,
            br#"{"kind":"a"}"#.to_vec(),
            415,
            "unsupported-media-type",
            None,
        ),
        (
            Some("text/plain"),
            br#"{"kind":"a"}"#.to_vec(),
            415,
            "unsupported-media-type",
            None,
        ),
        (
            Some("application/json"),
            b"{\"kind\": ".to_vec(),
            400,
            "malformed-json",
            None,
        ),
        (
            Some("application/json"),
            b"[1,2".to_vec(),
            400,
            "malformed-json",
            None,
        ),
        (
            Some("application/json"),
            br#"{"args":{}}"#.to_vec(),
            400,
            "bad-field",
            None,
        ),
        (
            Some("application/json"),
            br#"{"kind":"a","prio":1}"#.to_vec(),
            400,
            "bad-field",
            None,
        ),
        (
            Some("application/json"),
            br#"{"kind":"a","priority":"high"}"#.to_vec(),
            400,
            "bad-field",
            Some("priority"),
        ),
        (
            Some("application/json"),
            br#"{"kind":"a","delay":"soon"}"#.to_vec(),
            400,
            "bad-field",
            Some("delay"),
        ),
        (
            Some("application/json"),
            br#"{"kind":"a","queue":"no spaces"}"#.to_vec(),
            422,
            "invalid",
            Some("queue"),
        ),
        (
            Some("application/json"),
            br#"{"kind":"a","max_attempts":0}"#.to_vec(),
            422,
            "invalid",
            Some("max_attempts"),
        ),
        (
            Some("application/json"),
            br#"{"kind":"*"}"#.to_vec(),
            422,
            "invalid",
            Some("kind"),
        ),
        (
            Some("application/json"),
            br#"{"jobs":[{"kind":"a"},{"kind":"b","timeout":"0s"}]}"#.to_vec(),
            422,
            "invalid",
            Some("jobs[1].timeout"),
        ),
        (
            Some("application/json"),
            br#"{"jobs":[{"kind":"a"},{"kind":2}]}"#.to_vec(),
            400,
            "bad-field",
            Some("jobs[1].kind"),
        ),
        (
            Some("application/json; charset=utf-8"),
            format!(r#"{{"kind":"a","args":"{}"}}"#, "x".repeat(5000)).into_bytes(),
            413,
            "body-too-large",
            None,
        ),
    ];
    for (ct, body, status, kind, field) in cases {
        let r = api.post_raw("/v1/jobs", ct, body.clone()).await;
        assert_eq!(
            (r.status, r.problem()),
            (status, kind),
            "{ct:?} {}: {r:?}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        if let Some(f) = field {
            assert_eq!(r.body["field"], f, "{r:?}");
        }
        assert!(!r.body["detail"].as_str().unwrap().is_empty());
    }
    let nothing = api.get("/v1/jobs").await;
    assert_eq!(
        listed(&nothing.body),
        Vec::<i64>::new(),
        "no refused request wrote a job"
    );
    // Parameters and routes.
    for (path, status, kind) in [
        ("/v1/jobs/abc", 400, "bad-parameter"),
        ("/v1/jobs?state=sleeping", 400, "bad-parameter"),
        ("/v1/jobs?limit=0", 400, "bad-parameter"),
        ("/v1/jobs?cursor=zz", 400, "bad-parameter"),
        ("/v1/jobs?colour=red", 400, "bad-parameter"),
        ("/v1/nowhere", 404, "not-found"),
        ("/v1/jobs/1/wait?timeout=forever", 400, "bad-parameter"),
    ] {
        let r = api.get(path).await;
        assert_eq!((r.status, r.problem()), (status, kind), "{path}: {r:?}");
    }
    let r = api.call(reqwest::Method::DELETE, "/v1/jobs", None).await;
    assert_eq!((r.status, r.problem()), (405, "method-not-allowed"));
}

pub(crate) async fn a_wait_answers_when_the_job_finishes_or_408_with_the_job<H: Harness>(h: &H) {
    let api = start(h, ServerConfig::default()).await;
    let id = api.post("/v1/jobs", json!({"kind": "k"})).await.body["job"]["id"]
        .as_i64()
        .unwrap();
    let timed_out = api.get(&format!("/v1/jobs/{id}/wait?timeout=100ms")).await;
    assert_eq!(
        (timed_out.status, &timed_out.body["state"]),
        (408, &json!("available"))
    );
    let waiter = {
        let http = api.http.clone();
        let url = format!("{}/v1/jobs/{id}/wait?timeout=20s", api.base);
        tokio::spawn(async move { http.get(url).send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.post(&format!("/v1/jobs/{id}/cancel"), json!({})).await;
    let done = waiter.await.unwrap();
    assert_eq!(done.status().as_u16(), 200);
    let body: Value = done.json().await.unwrap();
    assert_eq!(body["state"], "cancelled");
    assert_eq!(api.get("/v1/jobs/424242/wait?timeout=1s").await.status, 404);
}

/// Every route is in the OpenAPI document, generated from the handlers.
pub(crate) async fn the_openapi_document_lists_every_route<H: Harness>(h: &H) {
    let api = start(h, ServerConfig::default()).await;
    let doc = api.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    let mut paths: Vec<String> = doc.body["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {p}", m.to_uppercase()))
        })
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "GET /healthz",
            "GET /readyz",
            "GET /v1/jobs",
            "GET /v1/jobs/{id}",
            "GET /v1/jobs/{id}/events",
            "GET /v1/jobs/{id}/wait",
            "GET /v1/nodes",
            "GET /v1/queues",
            "GET /v1/queues/{queue}/events",
            "POST /v1/complete",
            "POST /v1/heartbeat",
            "POST /v1/jobs",
            "POST /v1/jobs/{id}/cancel",
            "POST /v1/jobs/{id}/complete",
            "POST /v1/jobs/{id}/fail",
            "POST /v1/jobs/{id}/heartbeat",
            "POST /v1/jobs/{id}/release",
            "POST /v1/jobs/{id}/retry",
            "POST /v1/queues/{queue}/claim",
        ]
    );
    assert!(doc.body["components"]["schemas"]["Problem"].is_object());
    assert_eq!(
        doc.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc.body["components"]["schemas"]["EnqueueBatch"]["properties"]["jobs"]["maxItems"],
        10000
    );
    assert!(
        doc.body["info"]["description"]
            .as_str()
            .unwrap()
            .contains("1 MiB"),
        "limits are declared"
    );
    for open in ["/healthz", "/readyz"] {
        assert_eq!(
            doc.body["paths"][open]["get"]["security"],
            json!([{}]),
            "{open} needs no token"
        );
    }
    assert_eq!(api.get("/healthz").await.body["status"], "ok");
    assert_eq!(api.get("/readyz").await.status, 200);
    // Counts by state: two waiting, one scheduled, one done, one running.
    for delay in [None, None, None, None, Some("1h")] {
        let mut job = json!({"kind": "k", "queue": "counted"});
        if let Some(d) = delay {
            job["delay"] = json!(d);
        }
        assert_eq!(api.post("/v1/jobs", job).await.status, 201);
    }
    let held = api
        .post("/v1/queues/counted/claim", json!({"worker": "w", "max": 2}))
        .await;
    let first = &held.body["jobs"][0];
    let done = api
        .post(
            &format!("/v1/jobs/{}/complete", first["id"]),
            json!({"lease": first["lease"]}),
        )
        .await;
    assert_eq!(done.status, 200);
    let queues = api.get("/v1/queues").await;
    assert_eq!(queues.status, 200);
    let counted = queues.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "counted")
        .unwrap()
        .clone();
    assert_eq!(
        counted,
        json!({"queue": "counted", "scheduled": 1, "available": 2, "unhandled": 0,
               "running": 1, "retryable": 0, "completed": 1, "failed": 0, "cancelled": 0})
    );
}
