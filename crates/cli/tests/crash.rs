//! `serve` killed with SIGKILL mid-run, then restarted: every job ends
//! completed, none is lost.

use std::time::Duration;

use capstan_store_conformance::{Harness, TempDir};

use crate::support::{json, serve, signal, wait_exit, write};

pub(crate) async fn serve_killed_mid_run_loses_no_job<H: Harness>(h: &H) {
    const JOBS: usize = 600;
    let dir = TempDir::new("crash");
    let url = h.url();
    let lines: String = (0..JOBS)
        .map(|i| format!("{{\"kind\":\"capstan.sleep\",\"args\":{{\"ms\":40,\"i\":{i}}}}}\n"))
        .collect();
    let file = write(&dir, "jobs.jsonl", &lines);
    assert_eq!(
        json(
            &url,
            &dir,
            &["enqueue", "--batch", file.to_str().unwrap(), "--json"]
        )["enqueued"],
        JOBS
    );
    let mut node = serve(&url, &dir, &["--concurrency", "20", "--node-id", "crashy"]);
    // Let it get going: some jobs done, some running.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let q = json(&url, &dir, &["queues", "--json"]);
        if q[0]["completed"].as_u64().unwrap_or(0) >= 40
            && q[0]["running"].as_u64().unwrap_or(0) > 0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve made no progress: {q}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&node, "KILL");
    let status = wait_exit(&mut node, Duration::from_secs(10)).await;
    assert!(!status.success());
    let q = json(&url, &dir, &["queues", "--json"]);
    assert!(
        q[0]["running"].as_u64().unwrap() > 0,
        "jobs were left running by the killed node: {q}"
    );
    // Restarted with the same node id, it takes its jobs back at once.
    let mut node = serve(&url, &dir, &["--concurrency", "20", "--node-id", "crashy"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let q = json(&url, &dir, &["queues", "--json"]);
        if q[0]["completed"].as_u64().unwrap() == JOBS as u64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all jobs completed: {q}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&node, "TERM");
    assert!(
        wait_exit(&mut node, Duration::from_secs(30))
            .await
            .success()
    );
    let q = json(&url, &dir, &["queues", "--json"]);
    assert_eq!(
        q,
        serde_json::json!([{"queue":"default","scheduled":0,"available":0,"unhandled":0,"running":0,"retryable":0,"completed":JOBS,"failed":0,"cancelled":0}])
    );
    let list = json(&url, &dir, &["jobs", "list", "--limit", "1000", "--json"]);
    let rescued = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["errors"].as_array().is_some_and(|e| !e.is_empty()))
        .count();
    assert!(
        rescued > 0,
        "some jobs were taken back from the killed process"
    );
}
