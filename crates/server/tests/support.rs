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
