//! Talking to a running `capstan serve` over its HTTP API, for the commands
//! that are better served live than from the database: `jobs wait` (a
//! long-poll that wakes when any node finishes the job) and `jobs watch` (a
//! server-sent event stream).

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// A server's API.
pub(crate) struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// What a wait came to.
pub(crate) enum Waited {
    /// Finished (completed, failed or cancelled).
    Finished(Value),
    /// Still not finished when the time was up.
    TimedOut(Value),
}

impl Api {
    pub(crate) fn new(base: &str, token: Option<String>) -> anyhow::Result<Api> {
        let base = base.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--api {base}: give the http:// or https:// URL of a capstan serve");
        }
        Ok(Api {
            base,
            token,
            http: reqwest::Client::new(),
        })
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.get(format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn error(&self, res: reqwest::Response) -> anyhow::Error {
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        anyhow::anyhow!(
            "{} answered {status}: {}",
            self.base,
            body["detail"].as_str().unwrap_or("(no detail)")
        )
    }

    /// Wait up to `limit` for job `id`, 30 s per request.
    pub(crate) async fn wait(&self, id: i64, limit: Duration) -> anyhow::Result<Waited> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ms = left.min(Duration::from_secs(30)).as_millis().max(1);
            let res = self
                .get(&format!("/v1/jobs/{id}/wait?timeout={ms}ms"))
                .send()
                .await
                .with_context(|| format!("cannot reach the API at {}", self.base))?;
            match res.status().as_u16() {
                200 => return Ok(Waited::Finished(res.json().await?)),
                408 => {
                    let job: Value = res.json().await?;
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(Waited::TimedOut(job));
                    }
                }
                _ => return Err(self.error(res).await),
            }
        }
    }

    /// Print the events of `path` as they come; with `until_finished`,
    /// return the job once an event shows it finished.
    pub(crate) async fn watch(
        &self,
        path: &str,
        json: bool,
        until_finished: bool,
    ) -> anyhow::Result<Option<Value>> {
        let mut res = self.get(path).send().await.with_context(|| {
            format!(
                "cannot reach the API at {} (is `capstan serve` running?)",
                self.base
            )
        })?;
        if !res.status().is_success() {
            return Err(self.error(res).await);
        }
        let mut buf = String::new();
        while let Some(chunk) = res.chunk().await? {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if event.is_empty() {
                    continue; // keep-alive
                }
                let value: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                if json {
                    println!("{}", serde_json::json!({"event": event, "data": value}));
                } else if event == "job" {
                    let progress = match &value["progress"] {
                        Value::Null => String::new(),
                        p => format!(" progress {p}"),
                    };
                    println!(
                        "job {} {} attempt {}/{}{progress}",
                        value["id"],
                        value["state"].as_str().unwrap_or("?"),
                        value["attempt"],
                        value["max_attempts"]
                    );
                } else {
                    println!("{event}");
                }
                let finished = matches!(
                    value["state"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                );
                if until_finished && event == "job" && finished {
                    return Ok(Some(value));
                }
            }
        }
        Ok(None)
    }
}
