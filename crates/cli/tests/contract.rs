//! The CLI contract of issue 3, command by command.

use std::time::Duration;

use capstan_store_conformance::{Harness, TempDir};
use serde_json::Value;

use crate::support::{json, run, serve, signal, wait_exit, write};

fn id_of(v: &Value) -> String {
    v["id"].as_i64().expect("id").to_string()
}

pub(crate) async fn migrate_is_idempotent<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    for _ in 0..2 {
        let out = run(&h.url(), &dir, &["migrate"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub(crate) async fn enqueue_prints_the_job_and_honours_keys<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let url = h.url();
    let j = json(
        &url,
        &dir,
        &[
            "enqueue",
            "email.send",
            "--args",
            r#"{"to":"a@b.c"}"#,
            "--queue",
            "mail",
            "--priority",
            "3",
            "--delay",
            "30s",
            "--max-attempts",
            "5",
            "--timeout",
            "90s",
            "--json",
        ],
    );
    for key in [
        "id",
        "kind",
        "queue",
        "state",
        "attempt",
        "max_attempts",
        "run_at",
        "existing",
    ] {
        assert!(j.get(key).is_some(), "missing {key}: {j}");
    }
    assert_eq!(j["kind"], "email.send");
    assert_eq!(j["queue"], "mail");
    assert_eq!(j["state"], "scheduled");
    assert_eq!(j["priority"], 3);
    let run_at = chrono::DateTime::parse_from_rfc3339(j["run_at"].as_str().unwrap()).unwrap();
    let in_30s = chrono::Utc::now() + chrono::Duration::seconds(30);
    assert!(
        (run_at.with_timezone(&chrono::Utc) - in_30s)
            .num_seconds()
            .abs()
            <= 5,
        "run_at is about now + 30 s: {run_at}"
    );
    assert_eq!(j["handled"], false, "no node serves mail with email.send");
    assert_eq!(j["attempt"], 0);
    assert_eq!(j["max_attempts"], 5);
    assert_eq!(j["timeout_ms"], 90_000);
    assert_eq!(j["existing"], false);
    assert_eq!(j["args"]["to"], "a@b.c");
    let first = json(
        &url,
        &dir,
        &["enqueue", "k", "--idempotency-key", "order-1", "--json"],
    );
    let again = json(
        &url,
        &dir,
        &["enqueue", "k", "--idempotency-key", "order-1", "--json"],
    );
    assert_eq!(first["existing"], false);
    assert_eq!(again["existing"], true);
    assert_eq!(again["id"], first["id"]);
    let d1 = json(
        &url,
        &dir,
        &["enqueue", "k", "--dedupe-key", "u7", "--json"],
    );
    let d2 = json(
        &url,
        &dir,
        &["enqueue", "k", "--dedupe-key", "u7", "--json"],
    );
    assert_eq!(
        (d2["id"].clone(), d2["existing"].clone()),
        (d1["id"].clone(), Value::Bool(true))
    );
    let at = json(
        &url,
        &dir,
        &["enqueue", "k", "--run-at", "2099-01-02T03:04:05Z", "--json"],
    );
    assert_eq!(at["state"], "scheduled");
    assert!(
        at["run_at"]
            .as_str()
            .unwrap()
            .starts_with("2099-01-02T03:04:05")
    );
}

pub(crate) async fn batch_enqueue_is_all_or_nothing<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let url = h.url();
    let good = write(
        &dir,
        "good.jsonl",
        "{\"kind\":\"a\",\"args\":{\"n\":1}}\n\n{\"kind\":\"b\",\"queue\":\"q2\",\"delay\":\"5m\"}\n{\"kind\":\"c\",\"priority\":2,\"idempotency_key\":\"x\"}\n",
    );
    let out = json(
        &url,
        &dir,
        &["enqueue", "--batch", good.to_str().unwrap(), "--json"],
    );
    assert_eq!(out["enqueued"], 3);
    let c = json(&url, &dir, &["jobs", "list", "--kind", "c", "--json"]);
    assert_eq!(c[0]["priority"], 2, "the line's priority is kept");
    let bad = write(
        &dir,
        "bad.jsonl",
        "{\"kind\":\"a\"}\n{\"kind\":\"b\",\"queue\":\"no spaces\"}\n{\"kind\":\"c\"}\n",
    );
    let res = run(
        &url,
        &dir,
        &["enqueue", "--batch", bad.to_str().unwrap(), "--json"],
    );
    assert_eq!(
        res.status.code(),
        Some(2),
        "a bad input file is a usage error"
    );
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let typo = write(&dir, "typo.jsonl", "{\"kind\":\"a\",\"qeue\":\"x\"}\n");
    let res = run(&url, &dir, &["enqueue", "--batch", typo.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("line 1"));
    let counts = json(&url, &dir, &["queues", "--json"]);
    let total: u64 = counts
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["available"].as_u64().unwrap() + q["scheduled"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 3, "nothing from the bad files: {counts}");
    // stdin
    let mut child = crate::support::capstan(&url, &dir)
        .args(["enqueue", "--batch", "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"kind\":\"s\"}\n{\"kind\":\"s\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["enqueued"], 2);
}

pub(crate) async fn jobs_list_show_cancel_retry<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let url = h.url();
    let a = json(&url, &dir, &["enqueue", "report", "--json"]);
    let b = json(
        &url,
        &dir,
        &["enqueue", "email", "--queue", "mail", "--json"],
    );
    let list = json(&url, &dir, &["jobs", "list", "--json"]);
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![b["id"].as_i64().unwrap(), a["id"].as_i64().unwrap()],
        "newest first"
    );
    let mail = json(
        &url,
        &dir,
        &[
            "jobs",
            "list",
            "--queue",
            "mail",
            "--state",
            "available",
            "--kind",
            "email",
            "--json",
        ],
    );
    assert_eq!(mail.as_array().unwrap().len(), 1);
    assert_eq!(
        json(&url, &dir, &["jobs", "list", "--limit", "1", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let out = run(&url, &dir, &["jobs", "cancel", &id_of(&a)]);
    assert!(out.status.success());
    let shown = json(&url, &dir, &["jobs", "show", &id_of(&a), "--json"]);
    assert_eq!(shown["state"], "cancelled");
    assert_eq!(shown["errors"][0]["class"], "cancelled");
    let again = run(&url, &dir, &["jobs", "cancel", &id_of(&a)]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "a cancelled job cannot be cancelled again"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("cancelled"));
    assert!(
        run(&url, &dir, &["jobs", "retry", &id_of(&a)])
            .status
            .success()
    );
    let shown = json(&url, &dir, &["jobs", "show", &id_of(&a), "--json"]);
    assert_eq!(shown["state"], "available");
    let text = run(&url, &dir, &["jobs", "show", &id_of(&a)]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("errors:"));
}

pub(crate) async fn queues_prints_counts_per_state<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let url = h.url();
    assert_eq!(
        json(&url, &dir, &["queues", "--json"]),
        serde_json::json!([])
    );
    json(&url, &dir, &["enqueue", "k", "--json"]);
    json(&url, &dir, &["enqueue", "k", "--delay", "1h", "--json"]);
    let q = json(&url, &dir, &["queues", "--json"]);
    assert_eq!(
        q,
        serde_json::json!([{"queue":"default","scheduled":1,"available":1,"unhandled":0,"running":0,"retryable":0,"completed":0,"failed":0,"cancelled":0}])
    );
}

pub(crate) async fn serve_runs_jobs_and_stops_on_sigterm<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let url = h.url();
    let a = json(
        &url,
        &dir,
        &["enqueue", "capstan.noop", "--args", r#"{"x":1}"#, "--json"],
    );
    let m = json(
        &url,
        &dir,
        &["enqueue", "capstan.noop", "--queue", "mail", "--json"],
    );
    // capstan.toml in the working directory is read: a short grace period.
    write(&dir, "capstan.toml", "[node]\nshutdown_grace = \"300ms\"\n");
    let mut node = serve(
        &url,
        &dir,
        &[
            "--queues",
            "default,mail",
            "--concurrency",
            "4",
            "--node-id",
            "cli-node",
        ],
    );
    let done = json(
        &url,
        &dir,
        &["jobs", "wait", &id_of(&a), "--timeout", "30s", "--json"],
    );
    assert_eq!(done["state"], "completed");
    assert_eq!(done["result"], serde_json::json!({"x": 1}));
    json(
        &url,
        &dir,
        &["jobs", "wait", &id_of(&m), "--timeout", "30s", "--json"],
    );
    // A long job is running when SIGTERM arrives: it is handed back, not lost.
    let long = json(
        &url,
        &dir,
        &[
            "enqueue",
            "capstan.sleep",
            "--args",
            r#"{"ms":600000}"#,
            "--json",
        ],
    );
    loop {
        let j = json(&url, &dir, &["jobs", "show", &id_of(&long), "--json"]);
        if j["state"] == "running" {
            assert_eq!(j["node_id"], "cli-node");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&node, "TERM");
    let status = wait_exit(&mut node, Duration::from_secs(20)).await;
    assert!(status.success(), "serve exit: {status}");
    let j = json(&url, &dir, &["jobs", "show", &id_of(&long), "--json"]);
    assert_eq!(j["state"], "available");
    assert_eq!(j["attempt"], 0);
}

/// A second SIGTERM stops `serve` at once, however long its grace: running
/// jobs are handed back, attempt given back.
pub(crate) async fn a_second_sigterm_stops_serve_at_once<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let url = h.url();
    write(&dir, "capstan.toml", "[node]\nshutdown_grace = \"10m\"\n");
    let long = json(
        &url,
        &dir,
        &[
            "enqueue",
            "capstan.sleep",
            "--args",
            r#"{"ms":600000}"#,
            "--json",
        ],
    );
    let mut node = serve(&url, &dir, &[]);
    loop {
        let j = json(&url, &dir, &["jobs", "show", &id_of(&long), "--json"]);
        if j["state"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&node, "TERM");
    // Let the first one start the graceful shutdown.
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&node, "TERM");
    let status = wait_exit(&mut node, Duration::from_secs(20)).await;
    assert!(status.success(), "serve exit: {status}");
    let j = json(&url, &dir, &["jobs", "show", &id_of(&long), "--json"]);
    assert_eq!(
        (j["state"].as_str(), j["attempt"].as_i64()),
        (Some("available"), Some(0))
    );
}

pub(crate) async fn wait_exit_codes_tell_the_outcome<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let url = h.url();
    let ok = json(&url, &dir, &["enqueue", "capstan.noop", "--json"]);
    let bad = json(
        &url,
        &dir,
        &[
            "enqueue",
            "capstan.fail",
            "--args",
            r#"{"message":"boom","permanent":true}"#,
            "--json",
        ],
    );
    let never = json(&url, &dir, &["enqueue", "nobody.handles.this", "--json"]);
    let mut node = serve(&url, &dir, &[]);
    assert_eq!(
        run(
            &url,
            &dir,
            &["jobs", "wait", &id_of(&ok), "--timeout", "30s"]
        )
        .status
        .code(),
        Some(0)
    );
    let failed = run(
        &url,
        &dir,
        &["jobs", "wait", &id_of(&bad), "--timeout", "30s", "--json"],
    );
    assert_eq!(failed.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(v["errors"][0]["message"], "boom");
    let timed_out = run(
        &url,
        &dir,
        &["jobs", "wait", &id_of(&never), "--timeout", "300ms"],
    );
    assert_eq!(timed_out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&timed_out.stderr);
    assert!(
        err.contains("no live node") && !err.contains("wait longer"),
        "waiting longer would not help: {err}"
    );
    signal(&node, "INT");
    assert!(
        wait_exit(&mut node, Duration::from_secs(30))
            .await
            .success()
    );
}

pub(crate) async fn errors_are_one_line_with_the_right_exit_code<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let url = h.url();
    for usage in [
        vec!["enqueue", "k", "--args", "{not json"],
        vec!["enqueue", "k", "--delay", "soon"],
        vec![
            "enqueue",
            "k",
            "--delay",
            "1s",
            "--run-at",
            "2030-01-01T00:00:00Z",
        ],
        vec!["jobs", "list", "--state", "pending"],
        vec!["frobnicate"],
    ] {
        let out = run(&url, &dir, &usage);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{usage:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Out-of-range values: exit 2, naming the flag, never a panic (101).
    for (args, needle) in [
        (vec!["enqueue", "k", "--delay", "99999999d"], "--delay"),
        (vec!["enqueue", "k", "--timeout", "400d"], "--timeout"),
        (vec!["enqueue", "k", "--timeout", "0s"], "--timeout"),
        (
            vec!["enqueue", "k", "--run-at", "2999-01-01T00:00:00Z"],
            "--run-at",
        ),
        (vec!["enqueue", "k", "--queue", "bad queue"], "--queue"),
        (
            vec!["enqueue", "k", "--max-attempts", "0"],
            "--max-attempts",
        ),
        (vec!["enqueue", "k", "--priority", "99999"], "--priority"),
        (
            vec!["enqueue", "k", "--idempotency-key", ""],
            "--idempotency-key",
        ),
        (vec!["serve", "--concurrency", "0"], "--concurrency"),
        (vec!["bench", "--jobs", "0"], "--jobs"),
    ] {
        let out = run(&url, &dir, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(
        json(&url, &dir, &["queues", "--json"]),
        serde_json::json!([]),
        "nothing was enqueued"
    );
    for (args, needle) in [
        (vec!["jobs", "show", "424242"], "not found"),
        (vec!["jobs", "cancel", "424242"], "not found"),
    ] {
        let out = run(&url, &dir, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    let out = crate::support::capstan("postgres://nobody@127.0.0.1:1/none", &dir)
        .args(["queues"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open the database"));
    for (text, needle) in [
        ("[node]\nconcurrency = 0\n", "concurrency"),
        (
            "[node]\ndefault_timeout = \"1000000y\"\n",
            "default_timeout",
        ),
        ("concurrency = 4\n", "[node]"),
    ] {
        let cfg = write(&dir, "bad.toml", text);
        let out = run(&url, &dir, &["--config", cfg.to_str().unwrap(), "queues"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(needle), "{text}: {err}");
    }
}

pub(crate) async fn bench_prints_its_report<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let url = h.url();
    json(&url, &dir, &["enqueue", "k", "--json"]);
    let r = json(
        &url,
        &dir,
        &["bench", "--jobs", "300", "--concurrency", "10", "--json"],
    );
    for key in [
        "backend",
        "jobs",
        "concurrency",
        "enqueue_per_s",
        "enqueue_8_callers_per_s",
        "bulk_enqueue_per_s",
        "drain_per_s",
        "pickup_p50_ms",
        "pickup_p99_ms",
    ] {
        assert!(r.get(key).is_some(), "missing {key}: {r}");
    }
    assert_eq!(r["jobs"], 300);
    assert!(r["drain_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["pickup_p99_ms"].as_f64().unwrap() >= r["pickup_p50_ms"].as_f64().unwrap());
    // The bench removes its queue and leaves other jobs alone.
    let q = json(&url, &dir, &["queues", "--json"]);
    assert_eq!(q.as_array().unwrap().len(), 1, "{q}");
    assert_eq!(q[0]["queue"], "default");
    // --http: every figure, the clients' included, and nothing left behind.
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let r = json(
        &url,
        &dir,
        &[
            "bench",
            "--http",
            "--jobs",
            "200",
            "--concurrency",
            "10",
            "--streams",
            "20",
            "--examples",
            examples.to_str().unwrap(),
            "--json",
        ],
    );
    for key in [
        "http_rust_per_s",
        "http_ts_per_s",
        "http_py_per_s",
        "push_per_s",
        "sse_p50_ms",
        "sse_p99_ms",
    ] {
        assert!(r[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {r}");
    }
    assert_eq!(r["sse_streams"], 20);
    let q = json(&url, &dir, &["queues", "--json"]);
    assert_eq!(q.as_array().unwrap().len(), 1, "{q}");
}

/// `serve` waits for a database that does not answer (it is starting, failing
/// over), saying why, rather than exiting; it still stops on SIGTERM.
pub(crate) async fn serve_waits_for_a_database_that_does_not_answer() {
    let dir = TempDir::new("cli");
    let mut node = serve("postgres://nobody@127.0.0.1:1/none", &dir, &[]);
    let stderr = node.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let said = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("serve said nothing");
    assert!(said.contains("does not answer yet"), "{said}");
    assert!(node.try_wait().unwrap().is_none(), "serve exited: {said}");
    signal(&node, "TERM");
    assert!(
        wait_exit(&mut node, Duration::from_secs(20))
            .await
            .success()
    );
}

/// Only `migrate` and `serve` (and `bench`) write schema. Every other
/// command, on a database behind this version or a SQLite file that does
/// not exist, refuses with how to fix it and changes nothing.
pub(crate) async fn commands_other_than_migrate_and_serve_never_write_schema<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let missing = dir.path().join("none.db");
    let missing_url = format!("sqlite://{}", missing.display());
    for args in [vec!["queues"], vec!["jobs", "list"], vec!["enqueue", "k"]] {
        let out = run(&missing_url, &dir, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("no database at") && err.contains("capstan migrate"),
            "{args:?}: {err}"
        );
        assert!(!missing.exists(), "{args:?} created the SQLite file");
    }
    // A database one migration behind.
    let table = h.table("migrations");
    let newest = h.count(&format!("SELECT max(version) FROM {table}")).await;
    h.execute(&format!("DELETE FROM {table} WHERE version = {newest}"))
        .await;
    let url = h.url();
    for args in [
        vec!["queues"],
        vec!["jobs", "list"],
        vec!["enqueue", "k"],
        vec!["serve", "--no-migrate"],
    ] {
        let out = run(&url, &dir, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!("schema version {}", newest - 1))
                && err.contains("capstan migrate"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        h.count(&format!(
            "SELECT count(*) FROM {table} WHERE version = {newest}"
        ))
        .await,
        0,
        "nothing re-applied the migration"
    );
    assert_eq!(
        h.count(&format!("SELECT count(*) FROM {}", h.table("jobs")))
            .await,
        0,
        "nothing was enqueued"
    );
}

/// `capstan config` prints every effective setting with its source, the
/// password redacted; a bad value fails with the key, the value and the
/// source, before anything runs.
pub(crate) async fn config_prints_every_setting_and_where_it_came_from<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let cfg = write(&dir, "capstan.toml", "[node]\nclaim_batch = 64\n");
    let out = crate::support::capstan(&h.url(), &dir)
        .env("CAPSTAN_NODE_CANCEL_GRACE", "2s")
        .args(["--config", cfg.to_str().unwrap(), "config", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["node.claim_batch"]["value"], 64);
    assert_eq!(v["node.claim_batch"]["source"], cfg.display().to_string());
    assert_eq!(v["node.cancel_grace"]["value"], "2s");
    assert_eq!(
        v["node.cancel_grace"]["source"],
        "env CAPSTAN_NODE_CANCEL_GRACE"
    );
    assert_eq!(v["node.complete_batch"]["source"], "default");
    for key in [
        "node.schedule_interval",
        "node.clean_interval",
        "node.clean_batch",
        "node.retry.default.max_attempts",
    ] {
        assert!(v.get(key).is_some(), "{key} is printed: {v}");
    }
    let url = v["database.url"]["value"].as_str().unwrap();
    assert!(!url.contains(":postgres@") || url.contains("***"), "{url}");
    let out = crate::support::capstan(&h.url(), &dir)
        .env("CAPSTAN_NODE_DEFAULT_TIMEOUT", "soon")
        .args(["queues"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("node.default_timeout = \"soon\"")
            && err.contains("CAPSTAN_NODE_DEFAULT_TIMEOUT"),
        "{err}"
    );
}

/// `serve` answers HTTP on `--listen`; `--no-worker` runs no job itself, so
/// a pull worker gets it; an address other machines can reach needs tokens;
/// a port in use is an error that says so; SIGTERM stops it all.
pub(crate) async fn serve_answers_http_and_refuses_an_open_port_without_tokens<H: Harness>(h: &H) {
    let dir = TempDir::new("cli");
    let url = h.url();
    let out = run(&url, &dir, &["serve", "--listen", "0.0.0.0:0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("server.tokens") && err.contains("0.0.0.0"),
        "{err}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let mut node = serve(&url, &dir, &["--no-worker", "--listen", &addr]);
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..500 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "serve answers /readyz");
    let made: Value = http
        .post(format!("{base}/v1/jobs"))
        .json(&serde_json::json!({"kind": "capstan.noop", "args": {"x": 1}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["job"]["id"].as_i64().unwrap();
    let claimed: Value = http
        .post(format!("{base}/v1/queues/default/claim"))
        .json(&serde_json::json!({"worker": "w1", "wait": "5s"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        claimed["jobs"][0]["id"].as_i64(),
        Some(id),
        "no in-process worker took it"
    );
    let lease = claimed["jobs"][0]["lease"].as_str().unwrap();
    let done = http
        .post(format!("{base}/v1/jobs/{id}/complete"))
        .json(&serde_json::json!({"lease": lease, "result": "from w1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status().as_u16(), 200);
    let shown = json(&url, &dir, &["jobs", "show", &id.to_string(), "--json"]);
    assert_eq!(
        (&shown["state"], &shown["result"]),
        (
            &serde_json::json!("completed"),
            &serde_json::json!("from w1")
        )
    );
    // `jobs watch` prints a job's changes live and exits with its outcome;
    // `jobs wait --api` long-polls the server.
    let made: Value = http
        .post(format!("{base}/v1/jobs"))
        .json(&serde_json::json!({"kind": "capstan.noop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["job"]["id"].as_i64().unwrap().to_string();
    let mut watch = crate::support::capstan(&url, &dir)
        .args(["jobs", "watch", &id, "--api", &base])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = {
        use std::io::BufRead;
        let out = std::io::BufReader::new(watch.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let waiter = crate::support::capstan(&url, &dir)
        .args(["jobs", "wait", &id, "--api", &base, "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let claimed: Value = http
        .post(format!("{base}/v1/queues/default/claim"))
        .json(&serde_json::json!({"worker": "w1", "wait": "5s"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lease = claimed["jobs"][0]["lease"].as_str().unwrap();
    // The stream re-reads a job when hinted, so a state that lasts less
    // than a hint's round trip may be skipped (a final one never is): the
    // job stays running until `watch` has printed it.
    let mut watched_lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !watched_lines.iter().any(|l: &String| l.contains("running")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => watched_lines.push(line),
            Err(e) => panic!("watch printed no running state ({e}): {watched_lines:?}"),
        }
    }
    http.post(format!("{base}/v1/jobs/{id}/fail"))
        .json(&serde_json::json!({"lease": lease, "error": "no", "permanent": true}))
        .send()
        .await
        .unwrap();
    let status = watch.wait().unwrap();
    watched_lines.extend(lines.iter());
    let text = watched_lines.join("\n");
    assert_eq!(status.code(), Some(1), "a failed job: {text}");
    assert!(
        text.contains("available") && text.contains("running") && text.contains("failed"),
        "{text}"
    );
    let waited = waiter.wait_with_output().unwrap();
    assert_eq!(waited.status.code(), Some(1));
    let job: Value = serde_json::from_slice(&waited.stdout).unwrap();
    assert_eq!(job["state"], "failed");
    // A second server on the same port: refused, saying why.
    let out = run(&url, &dir, &["serve", "--listen", &addr]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    signal(&node, "TERM");
    let status = wait_exit(&mut node, Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    assert!(http.get(format!("{base}/healthz")).send().await.is_err());
}
