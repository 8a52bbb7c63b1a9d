//! The clients in their own languages against a real `capstan serve`: the
//! TypeScript and the Python worker of `examples/` share a queue, fail as
//! asked, and one SIGKILLed mid-job loses its job to the other; a stale
//! lease is refused; SIGTERM stops every process cleanly. `node` and
//! `python3` must be installed: a missing one fails with what to install.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use capstan_store_conformance::{Harness, TempDir};
use serde_json::{Value, json};

use crate::support::{serve, signal, wait_exit, write};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `program` runs, or the test fails saying what to install.
fn require(program: &str, hint: &str) {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{program}` is needed by the client tests and was not found: {hint}"
    );
}

fn worker(cmd: &str, script: &str, base: &str, dir: &TempDir, log: &str) -> Child {
    worker_with(cmd, script, base, dir, log, &[])
}

/// A client's process (a worker, a check script) with `env` over the
/// defaults (queue demo, 4 slots, a beat every 300 ms).
fn worker_with(
    cmd: &str,
    script: &str,
    base: &str,
    dir: &TempDir,
    log: &str,
    env: &[(&str, &str)],
) -> Child {
    Command::new(cmd)
        .arg(repo().join(script))
        .env("CAPSTAN_URL", base)
        .env("QUEUE", "demo")
        .env("CONCURRENCY", "4")
        .env("HEARTBEAT", "300ms")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join(log)).unwrap())
        .stderr(std::fs::File::create(dir.path().join(format!("{log}.err"))).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd} {script}: {e}"))
}

struct Http {
    base: String,
    c: reqwest::Client,
    token: Option<String>,
}

impl Http {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.c.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }
    async fn get(&self, path: &str) -> Value {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
    /// Poll `path` until `done` holds (at most 60 s).
    async fn until(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..1200 {
            // (Connection refused while the server starts counts as "not yet".)
            let r = self.request(reqwest::Method::GET, path).send().await;
            if let Ok(r) = r
                && let Ok(v) = r.json::<Value>().await
                && done(&v)
            {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: never happened ({path})");
    }
}

/// `capstan serve --no-worker` on a free port of 127.0.0.1, ready, and a
/// client of it (calling with `token`).
async fn api_node(url: &str, dir: &TempDir, token: Option<&str>) -> (Child, Http) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let http = Http {
        base: format!("http://{addr}"),
        c: {
            capstan::runtime::push::install_tls();
            reqwest::Client::new()
        },
        token: token.map(str::to_owned),
    };
    let server = serve(url, dir, &["--no-worker", "--listen", &addr]);
    http.until("/readyz", "serve is ready", |v| v["status"] == "ok")
        .await;
    (server, http)
}

pub(crate) async fn typescript_and_python_workers_share_a_queue_and_survive_a_kill<H: Harness>(
    h: &H,
) {
    require("node", "install Node.js 18 or newer (https://nodejs.org)");
    require("python3", "install Python 3.9 or newer");
    let dir = TempDir::new("clients");
    let url = h.url();
    write(
        &dir,
        "capstan.toml",
        "[node]\nrescue_interval = \"300ms\"\n[server]\nworker_timeout = \"3s\"\nmax_wait = \"1s\"\nrequest_timeout = \"10s\"\n",
    );
    let (mut server, http) = api_node(&url, &dir, None).await;
    let mut ts = worker(
        "node",
        "examples/worker-ts/worker.mjs",
        &http.base,
        &dir,
        "ts.log",
    );
    let mut py = worker(
        "python3",
        "examples/worker-py/worker.py",
        &http.base,
        &dir,
        "py.log",
    );
    // Both register, as workers of the queue.
    http.until("/v1/nodes", "both workers registered", |v| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["role"] == "worker")
            .count()
            == 2
    })
    .await;
    // 60 jobs of 30 ms each: both workers take a share.
    let jobs: Vec<Value> = (0..60)
        .map(|i| json!({"kind": "demo.echo", "queue": "demo", "args": {"i": i, "ms": 30}}))
        .collect();
    let (status, made) = http.post("/v1/jobs", json!({ "jobs": jobs })).await;
    assert_eq!(status, 201);
    let ids: Vec<i64> = made["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    let mut langs = std::collections::BTreeSet::new();
    for id in &ids {
        let job = http
            .until(&format!("/v1/jobs/{id}"), "a job completes", |j| {
                j["state"] == "completed"
            })
            .await;
        assert_eq!(
            job["result"]["echo"]["i"].as_i64(),
            Some(job["args"]["i"].as_i64().unwrap())
        );
        langs.insert(job["result"]["lang"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        langs,
        ["py".to_owned(), "ts".to_owned()].into(),
        "both workers ran jobs"
    );
    // Failures, by each language's error classes.
    let (_, f) = http
        .post("/v1/jobs", json!({"kind": "demo.fail", "queue": "demo", "max_attempts": 3, "args": {"permanent": true, "message": "bad input"}}))
        .await;
    let id = f["job"]["id"].as_i64().unwrap();
    let job = http
        .until(&format!("/v1/jobs/{id}"), "a permanent failure", |j| {
            j["state"] == "failed"
        })
        .await;
    assert_eq!(
        (
            &job["attempt"],
            &job["errors"][0]["class"],
            &job["errors"][0]["message"]
        ),
        (&json!(1), &json!("permanent"), &json!("bad input"))
    );
    let (_, f) = http
        .post("/v1/jobs", json!({"kind": "demo.fail", "queue": "demo", "max_attempts": 2, "args": {"retry_after": "100ms", "message": "HTTP 429"}}))
        .await;
    let id = f["job"]["id"].as_i64().unwrap();
    let job = http
        .until(&format!("/v1/jobs/{id}"), "retried, then failed", |j| {
            j["state"] == "failed"
        })
        .await;
    assert_eq!(job["attempt"], 2, "the retry ran: {job}");
    assert_eq!(job["errors"][0]["class"], "retryable");
    // A long job; the worker running it is killed; the other finishes it.
    let (_, long) = http
        .post(
            "/v1/jobs",
            json!({"kind": "demo.echo", "queue": "demo", "args": {"ms": 2500}}),
        )
        .await;
    let id = long["job"]["id"].as_i64().unwrap();
    let running = http
        .until(&format!("/v1/jobs/{id}"), "the long job runs", |j| {
            j["state"] == "running"
        })
        .await;
    let holder = running["node_id"].as_str().unwrap().to_owned();
    let nodes = http.get("/v1/nodes").await;
    let lang_of = |name: &str| {
        let ts_log = std::fs::read_to_string(dir.path().join("ts.log")).unwrap_or_default();
        if ts_log.contains(name) { "ts" } else { "py" }
    };
    assert!(
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == holder.as_str())
    );
    let killed = lang_of(&holder);
    let (victim, survivor) = if killed == "ts" {
        (&mut ts, &mut py)
    } else {
        (&mut py, &mut ts)
    };
    signal(victim, "KILL");
    let _ = victim.wait();
    let job = http
        .until(
            &format!("/v1/jobs/{id}"),
            "the killed worker's job is finished by the other",
            |j| j["state"] == "completed",
        )
        .await;
    assert_ne!(job["result"]["lang"], killed, "{job}");
    assert_eq!(job["attempt"], 2);
    assert_eq!(job["errors"][0]["class"], "rescued");
    // A lease that went stale (its worker fell silent, the job was
    // rescued) is refused and changes nothing.
    let (_, g) = http
        .post("/v1/jobs", json!({"kind": "k", "queue": "ghosts"}))
        .await;
    let gid = g["job"]["id"].as_i64().unwrap();
    let (_, claimed) = http
        .post("/v1/queues/ghosts/claim", json!({"worker": "ghost"}))
        .await;
    let lease = claimed["jobs"][0]["lease"].as_str().unwrap().to_owned();
    http.until(
        &format!("/v1/jobs/{gid}"),
        "the silent worker's job is rescued",
        |j| j["state"] == "available",
    )
    .await;
    let (status, problem) = http
        .post(
            &format!("/v1/jobs/{gid}/complete"),
            json!({"lease": lease, "result": 1}),
        )
        .await;
    assert_eq!(
        (status, &problem["type"]),
        (409, &json!("urn:capstan:problem:stale-lease"))
    );
    assert_eq!(
        http.get(&format!("/v1/jobs/{gid}")).await["state"],
        "available"
    );
    // SIGTERM: the survivor stops cleanly, then the server.
    signal(survivor, "TERM");
    let status = wait_exit(survivor, Duration::from_secs(20)).await;
    assert!(
        status.success(),
        "the {} worker stops cleanly: {status}",
        if killed == "ts" { "py" } else { "ts" }
    );
    let running = http.get("/v1/jobs?queue=demo&state=running").await;
    assert_eq!(running["jobs"], json!([]), "nothing left running");
    signal(&server, "TERM");
    assert!(
        wait_exit(&mut server, Duration::from_secs(20))
            .await
            .success()
    );
}

/// Each client, by its own scripts, with a token: its calls (enqueue,
/// batches, get, list, wait, cancel, retry, errors) hold; a result the
/// server refuses fails its own job and no other; a handler's HTTP status
/// decides by the push table; and a worker whose every
/// slot is busy stops on SIGTERM within its grace, giving its jobs back
/// with their attempts.
pub(crate) async fn each_client_checks_out_fails_a_refused_result_alone_and_stops_when_busy<
    H: Harness,
>(
    h: &H,
) {
    require("node", "install Node.js 18 or newer (https://nodejs.org)");
    require("python3", "install Python 3.9 or newer");
    let dir = TempDir::new("clients-each");
    let token = "client-test-token";
    write(
        &dir,
        "capstan.toml",
        &format!(
            "[[server.tokens]]\nname = \"test\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
            capstan_server::hash_token(token)
        ),
    );
    let (mut server, http) = api_node(&h.url(), &dir, Some(token)).await;
    let finished = |j: &Value| {
        ["completed", "failed", "cancelled"].contains(&j["state"].as_str().unwrap_or(""))
    };
    for (lang, cmd, check, script) in [
        (
            "ts",
            "node",
            "clients/typescript/test/check.mjs",
            "examples/worker-ts/worker.mjs",
        ),
        (
            "py",
            "python3",
            "clients/python/tests/check.py",
            "examples/worker-py/worker.py",
        ),
    ] {
        let env = [("CAPSTAN_TOKEN", token)];
        let log = format!("{lang}-check.log");
        let mut c = worker_with(cmd, check, &http.base, &dir, &log, &env);
        let status = wait_exit(&mut c, Duration::from_secs(60)).await;
        let out = std::fs::read_to_string(dir.path().join(&log)).unwrap_or_default();
        let err =
            std::fs::read_to_string(dir.path().join(format!("{log}.err"))).unwrap_or_default();
        assert!(
            status.success() && out.trim() == "ok",
            "{lang} client checks: {status}\n{out}\n{err}"
        );
        let queue = format!("busy-{lang}");
        let mut w = worker_with(
            cmd,
            script,
            &http.base,
            &dir,
            &format!("{lang}-worker.log"),
            &[
                ("CAPSTAN_TOKEN", token),
                ("QUEUE", &queue),
                ("CONCURRENCY", "2"),
                ("SHUTDOWN_GRACE", "300ms"),
            ],
        );
        // A result over the server's 1 MiB limit, beside two good ones.
        let big = json!({"kind": "demo.big", "queue": queue, "args": {"bytes": 1_200_000}});
        let echo = json!({"kind": "demo.echo", "queue": queue, "args": {"n": 1}});
        let (status, made) = http
            .post("/v1/jobs", json!({"jobs": [big, echo, echo]}))
            .await;
        assert_eq!(status, 201, "{made}");
        let ids: Vec<i64> = made["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect();
        let mut ends = Vec::new();
        for id in &ids {
            let j = http
                .until(&format!("/v1/jobs/{id}"), "a job ends", finished)
                .await;
            ends.push((j["state"].as_str().unwrap().to_owned(), j["errors"].clone()));
        }
        assert_eq!(ends[0].0, "failed", "{lang}: {ends:?}");
        assert_eq!(ends[0].1[0]["class"], "permanent", "{lang}: {ends:?}");
        assert!(
            ends[0].1[0]["message"]
                .as_str()
                .unwrap()
                .contains("refused the job's result"),
            "{lang}: {ends:?}"
        );
        assert_eq!(
            (ends[1].0.as_str(), ends[2].0.as_str()),
            ("completed", "completed"),
            "{lang}: the good results are kept"
        );
        // A handler's HTTP status decides by the push table: a 503 with
        // Retry-After is retried, then a 404 fails it for good.
        for (args, attempts, class, message) in [
            (
                json!({"status": 503, "retry_after": "0", "message": "busy"}),
                3,
                "retryable",
                "HTTP 503: busy",
            ),
            (
                json!({"status": 404, "message": "no such document"}),
                1,
                "permanent",
                "HTTP 404: no such document",
            ),
        ] {
            let (_, f) = http
                .post(
                    "/v1/jobs",
                    json!({"kind": "demo.fail", "queue": queue, "max_attempts": 3, "args": args}),
                )
                .await;
            let id = f["job"]["id"].as_i64().unwrap();
            let j = http
                .until(&format!("/v1/jobs/{id}"), "a job ends", finished)
                .await;
            assert_eq!(
                (
                    &j["state"],
                    &j["attempt"],
                    &j["errors"][0]["class"],
                    &j["errors"][0]["message"]
                ),
                (
                    &json!("failed"),
                    &json!(attempts),
                    &json!(class),
                    &json!(message)
                ),
                "{lang}: {j}"
            );
        }
        // Every slot busy with a long job; SIGTERM; the jobs go back.
        let long = json!({"kind": "demo.echo", "queue": queue, "args": {"ms": 60_000}});
        let (_, made) = http.post("/v1/jobs", json!({"jobs": [long, long]})).await;
        let ids: Vec<i64> = made["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect();
        for id in &ids {
            http.until(&format!("/v1/jobs/{id}"), "a long job runs", |j| {
                j["state"] == "running"
            })
            .await;
        }
        signal(&w, "TERM");
        let status = wait_exit(&mut w, Duration::from_secs(10)).await;
        assert!(
            status.success(),
            "{lang}: a busy worker stops within its grace: {status}"
        );
        for id in &ids {
            let j = http.get(&format!("/v1/jobs/{id}")).await;
            assert_eq!(
                (&j["state"], &j["attempt"]),
                (&json!("available"), &json!(0)),
                "{lang}: given back, its attempt too: {j}"
            );
        }
    }
    signal(&server, "TERM");
    assert!(
        wait_exit(&mut server, Duration::from_secs(20))
            .await
            .success()
    );
}
