//! A real server on a free port of 127.0.0.1, over the harness's database,
//! and a client that speaks to it through the socket.

use std::sync::Arc;

use capstan::{AnyStore, Client, Store};
use capstan_server::{ServerConfig, ServerState};
use capstan_store_conformance::Harness;
use reqwest::Method;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) client: Client<AnyStore>,
    pub(crate) stop: CancellationToken,
    pub(crate) task: JoinHandle<std::io::Result<()>>,
    token: Option<String>,
}

/// A server with `config` (its `listen` replaced by a free port), on the
/// harness's database and clock.
pub(crate) async fn start<H: Harness>(h: &H, mut config: ServerConfig) -> Api {
    capstan::runtime::push::install_tls();
    let store = AnyStore::connect(&h.url()).await.unwrap();
    store.migrate().await.unwrap();
    let client = Client::new(store).with_clock(Arc::new(h.clock().clone()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let state = ServerState::new(client.clone(), config, stop.clone())
        .await
        .unwrap();
    let task = tokio::spawn(capstan_server::serve(listener, state));
    Api {
        base,
        http: reqwest::Client::new(),
        client,
        stop,
        task,
        token: None,
    }
}

/// A reply: its status, its content type and its body as JSON (null when
/// it has none).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) body: Value,
}

impl Reply {
    /// The problem's `type` slug, checking it is a problem detail.
    pub(crate) fn problem(&self) -> &str {
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"].as_u64(), Some(u64::from(self.status)));
        self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("urn:capstan:problem:"))
            .unwrap_or_else(|| panic!("no problem type: {self:?}"))
    }
}

impl Api {
    /// The same server, calling with `token`.
    pub(crate) fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            base: self.base.clone(),
            http: self.http.clone(),
            client: self.client.clone(),
            stop: self.stop.clone(),
            task: tokio::spawn(async { Ok(()) }),
            token: token.map(str::to_owned),
        }
    }

    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        reply(req.send().await.unwrap()).await
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    /// POST raw bytes with a content type (or none).
    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        reply(req.send().await.unwrap()).await
    }
}

async fn reply(res: reqwest::Response) -> Reply {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = res.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    Reply {
        status,
        content_type,
        body,
    }
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub(crate) struct SseEvent {
    pub(crate) event: String,
    pub(crate) id: String,
    pub(crate) data: Value,
}

/// A server-sent event stream being read.
pub(crate) struct Sse {
    res: reqwest::Response,
    buf: String,
    /// Keep-alive comments read so far.
    pub(crate) keep_alives: usize,
    /// The server ended the stream.
    pub(crate) ended: bool,
}

impl Sse {
    /// Open `path` on `api`, resuming after `last` when given.
    pub(crate) async fn open(api: &Api, path: &str, last: Option<&str>) -> Sse {
        let mut req = api.http.get(format!("{}{path}", api.base));
        if let Some(l) = last {
            req = req.header("last-event-id", l);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Sse {
            res,
            buf: String::new(),
            keep_alives: 0,
            ended: false,
        }
    }

    /// The next event within `within`; `None` when the stream ended, or
    /// nothing came in time.
    pub(crate) async fn next_within(&mut self, within: std::time::Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut e = SseEvent::default();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        e.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        e.id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if e.event.is_empty() && data.is_empty() {
                    if block.lines().any(|l| l.starts_with(':')) {
                        self.keep_alives += 1;
                    }
                    continue;
                }
                e.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(e);
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .ok()?;
            match chunk.unwrap() {
                Some(bytes) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                None => {
                    self.ended = true;
                    return None;
                }
            }
        }
    }

    /// The next event (at most 10 s).
    pub(crate) async fn next(&mut self) -> SseEvent {
        self.next_within(std::time::Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
    }
}
