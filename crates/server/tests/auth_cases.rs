//! Tokens and roles through a real socket: 401 without a valid token, 403
//! for a role that may not, the health routes open.

use capstan_server::{Role, ServerConfig, TokenConfig, hash_token};
use capstan_store_conformance::Harness;
use serde_json::json;

use crate::support::start;

fn token(name: &str, role: Role, queues: &[&str]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        role,
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        sha256: hash_token(&format!("secret-{name}")),
    }
}

pub(crate) async fn each_role_may_do_its_part_and_nothing_else<H: Harness>(h: &H) {
    let config = ServerConfig {
        tokens: vec![
            token("admin", Role::Admin, &[]),
            token("read", Role::Read, &[]),
            token("enqueue", Role::Enqueue, &[]),
            token("worker", Role::Worker, &["a"]),
        ],
        ..ServerConfig::default()
    };
    let api = start(h, config).await;
    let as_ = |name: &str| api.with_token(Some(&format!("secret-{name}")));
    let anonymous = api.with_token(None);
    let r = anonymous.get("/v1/jobs").await;
    assert_eq!((r.status, r.problem()), (401, "unauthorized"));
    let r = api.with_token(Some("not-a-token")).get("/v1/jobs").await;
    assert_eq!((r.status, r.problem()), (401, "unauthorized"));
    assert!(
        !r.body["detail"].as_str().unwrap().contains("not-a-token"),
        "a token is never echoed"
    );
    assert_eq!(anonymous.get("/healthz").await.status, 200);
    assert_eq!(anonymous.get("/openapi.json").await.status, 200);
    // read: GETs only.
    assert_eq!(as_("read").get("/v1/jobs").await.status, 200);
    let r = as_("read")
        .post("/v1/jobs", json!({"kind": "k", "queue": "a"}))
        .await;
    assert_eq!((r.status, r.problem()), (403, "forbidden"));
    // enqueue: POST jobs and read, not cancel or claim.
    let made = as_("enqueue")
        .post("/v1/jobs", json!({"kind": "k", "queue": "a"}))
        .await;
    assert_eq!(made.status, 201);
    let id = made.body["job"]["id"].as_i64().unwrap();
    assert_eq!(
        as_("enqueue").get(&format!("/v1/jobs/{id}")).await.status,
        200
    );
    assert_eq!(
        as_("enqueue")
            .post(&format!("/v1/jobs/{id}/cancel"), json!({}))
            .await
            .status,
        403
    );
    assert_eq!(
        as_("enqueue")
            .post("/v1/queues/a/claim", json!({"worker": "w"}))
            .await
            .status,
        403
    );
    // worker: its queues only, and no reading.
    let r = as_("worker")
        .post("/v1/queues/b/claim", json!({"worker": "w"}))
        .await;
    assert_eq!((r.status, r.problem()), (403, "forbidden"));
    let got = as_("worker")
        .post("/v1/queues/a/claim", json!({"worker": "w"}))
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["jobs"][0]["id"].as_i64(), Some(id));
    assert_eq!(as_("worker").get("/v1/jobs").await.status, 403);
    // ... and acts by lease only on jobs of its queues: a job of queue b,
    // claimed by an admin, is out of its reach even with the right lease.
    let other = as_("admin")
        .post("/v1/jobs", json!({"kind": "k", "queue": "b"}))
        .await
        .body["job"]["id"]
        .as_i64()
        .unwrap();
    let held = as_("admin")
        .post("/v1/queues/b/claim", json!({"worker": "w2"}))
        .await;
    let lease = held.body["jobs"][0]["lease"].as_str().unwrap().to_owned();
    for (path, body) in [
        (
            format!("/v1/jobs/{other}/heartbeat"),
            json!({"lease": lease}),
        ),
        (
            format!("/v1/jobs/{other}/complete"),
            json!({"lease": lease}),
        ),
        (
            format!("/v1/jobs/{other}/fail"),
            json!({"lease": lease, "error": "x"}),
        ),
        (format!("/v1/jobs/{other}/release"), json!({"lease": lease})),
        (
            "/v1/heartbeat".to_owned(),
            json!({"jobs": [{"id": other, "lease": lease}]}),
        ),
        (
            "/v1/complete".to_owned(),
            json!({"jobs": [{"id": other, "lease": lease}]}),
        ),
    ] {
        let r = as_("worker").post(&path, body).await;
        assert_eq!((r.status, r.problem()), (403, "forbidden"), "{path}");
        assert!(
            r.body["detail"].as_str().unwrap().contains("queue b"),
            "{path}: {}",
            r.body
        );
    }
    let job = as_("admin").get(&format!("/v1/jobs/{other}")).await;
    assert_eq!(
        (&job.body["state"], &job.body["progress"]),
        (&json!("running"), &json!(null)),
        "nothing was changed"
    );
    // Its own job, by its lease: completed.
    let own = as_("worker")
        .post(
            &format!("/v1/jobs/{id}/complete"),
            json!({"lease": got.body["jobs"][0]["lease"]}),
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
    // admin: everything.
    let r = as_("admin")
        .post(&format!("/v1/jobs/{other}/cancel"), json!({}))
        .await;
    assert_eq!((r.status, &r.body["outcome"]), (200, &json!("requested")));
}
