//! A push queue end to end: `capstan serve` with `[queues.hooks]` POSTs
//! each job to a local test server, which verifies its Standard Webhooks
//! signatures and answers as each job's args say — 200, 429 with a
//! Retry-After past the cap, 500, 400, 410 — and the jobs end as the status
//! table says, with the status and the body's start in their history.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use capstan_store_conformance::{Harness, TempDir};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::support::{json as run_json, serve, signal, wait_exit, write};

const SECRET_NEW: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_OLD: &str = "whsec_c2VjcmV0LXRoYXQtaXMtbG9uZy1lbm91Z2gtZm9yLWhtYWM=";

#[derive(Default)]
struct Seen {
    /// (job id, attempt) of every push with good signatures.
    pushes: Vec<(i64, i64)>,
    /// When each of them arrived.
    at: Vec<std::time::Instant>,
    bad_signatures: usize,
}

/// True when `headers` carry a valid signature for `body` under `secret`.
fn signed_with(headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, ts, sigs) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let now = chrono::Utc::now().timestamp();
    if ts.parse::<i64>().map_or(true, |t| (now - t).abs() > 300) {
        return false;
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    sigs.split(' ').any(|s| s == want)
}

async fn hook(seen: Arc<Mutex<Seen>>, headers: HeaderMap, body: Bytes) -> Response {
    let ok = signed_with(&headers, &body, SECRET_NEW) && signed_with(&headers, &body, SECRET_OLD);
    let job: Value = serde_json::from_slice(&body).unwrap_or_default();
    if !ok
        || headers.get("webhook-id").and_then(|v| v.to_str().ok())
            != Some(&format!("job-{}", job["id"]))
    {
        seen.lock().unwrap().bad_signatures += 1;
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let attempt = job["attempt"].as_i64().unwrap();
    {
        let mut seen = seen.lock().unwrap();
        seen.pushes.push((job["id"].as_i64().unwrap(), attempt));
        seen.at.push(std::time::Instant::now());
    }
    let script = job["args"]["respond"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let status = script
        .get(attempt as usize - 1)
        .and_then(Value::as_u64)
        .unwrap_or(200) as u16;
    let mut res = (
        StatusCode::from_u16(status).unwrap(),
        format!(r#"{{"status":{status},"job":{}}}"#, job["id"]),
    )
        .into_response();
    if status == 429 {
        res.headers_mut()
            .insert("retry-after", "3600".parse().unwrap());
    }
    res
}

pub(crate) async fn a_push_queue_posts_signed_jobs_and_follows_the_status_table<H: Harness>(h: &H) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let seen = seen.clone();
            move |headers, body| hook(seen.clone(), headers, body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = TempDir::new("push");
    let url = h.url();
    write(
        &dir,
        "capstan.toml",
        &format!(
            "[queues.hooks]\npush_url = \"{target}\"\nconcurrency = 1\nsecret = [\"{SECRET_NEW}\", \"{SECRET_OLD}\"]\nretry_after_cap = \"300ms\"\npush_timeout = \"5s\"\n[node.retry.queues.hooks]\nbase_delay = \"100ms\"\njitter = 0.0\n"
        ),
    );
    let mut node = serve(&url, &dir, &["--no-http"]);
    let enqueue = |respond: Value| {
        let args = json!({ "respond": respond }).to_string();
        let out = run_json(
            &url,
            &dir,
            &[
                "enqueue",
                "anything",
                "--queue",
                "hooks",
                "--args",
                &args,
                "--max-attempts",
                "5",
                "--json",
            ],
        );
        out["id"].as_i64().unwrap()
    };
    let show = |id: i64| run_json(&url, &dir, &["jobs", "show", &id.to_string(), "--json"]);
    let until = |id: i64, state: &'static str| {
        let show = &show;
        async move {
            for _ in 0..600 {
                let j = show(id);
                if j["state"] == state {
                    return j;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("job {id} never reached {state}: {}", show(id));
        }
    };
    // 2xx: completed, the JSON body is the result.
    let ok = enqueue(json!([200]));
    let j = until(ok, "completed").await;
    assert_eq!(j["result"], json!({"status": 200, "job": ok}));
    // 429 with a Retry-After of an hour (capped at 300 ms), then 500 (the
    // backoff), then 200: three attempts, both failures in the history.
    let flaky = enqueue(json!([429, 500, 200]));
    let j = until(flaky, "completed").await;
    assert_eq!(j["attempt"], 3);
    let errors = j["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0]["message"].as_str().unwrap().contains("429"),
        "{errors:?}"
    );
    assert!(
        errors[1]["message"].as_str().unwrap().contains("500"),
        "{errors:?}"
    );
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap()
            .contains(r#""status":500"#),
        "the body's start is kept"
    );
    // Another 4xx: failed for good, at once.
    let refused = enqueue(json!([400]));
    let j = until(refused, "failed").await;
    assert_eq!(
        (&j["attempt"], &j["errors"][0]["class"]),
        (&json!(1), &json!("permanent"))
    );
    // 410: the target is disabled; this job and the next wait, attempts kept.
    let gone = enqueue(json!([410]));
    let j = until(gone, "scheduled").await;
    assert_eq!(j["attempt"], 0, "a snooze gives the attempt back");
    let pushes_before = seen.lock().unwrap().pushes.len();
    let next = enqueue(json!([200]));
    let j = until(next, "scheduled").await;
    assert_eq!(j["attempt"], 0);
    assert_eq!(
        seen.lock().unwrap().pushes.len(),
        pushes_before,
        "nothing more pushed to a disabled target"
    );
    {
        let s = seen.lock().unwrap();
        assert_eq!(
            s.bad_signatures, 0,
            "every push carried both valid signatures"
        );
        assert_eq!(s.pushes.iter().filter(|(id, _)| *id == flaky).count(), 3);
        // The 429's Retry-After (an hour, capped at 300 ms) set the wait
        // before the second attempt, not the 100 ms backoff.
        let at = |attempt| {
            let i = s
                .pushes
                .iter()
                .position(|p| *p == (flaky, attempt))
                .unwrap();
            s.at[i]
        };
        let waited = at(2) - at(1);
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "{waited:?} between the 429 and the next attempt"
        );
    }
    signal(&node, "TERM");
    assert!(
        wait_exit(&mut node, Duration::from_secs(20))
            .await
            .success()
    );
}
