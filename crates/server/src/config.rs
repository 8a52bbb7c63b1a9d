//! `[server]` in `capstan.toml`: where the API listens, who may call it,
//! and its limits. Every field has a default; an unknown key is an error.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:7400"        # serve --listen
//! max_body_bytes = 8388608
//! request_timeout = "60s"
//! worker_timeout = "60s"           # a pull worker silent this long is dead
//! max_wait = "30s"                 # longest claim or wait
//! keep_alive = "15s"               # an event stream's keep-alive comment
//! [[server.tokens]]
//! name = "ts-workers"
//! role = "worker"                  # admin | worker | enqueue | read
//! queues = ["emails"]              # worker: the queues it may claim from (none: all)
//! sha256 = "9f86d0…"               # the token's SHA-256 in hex, never the token
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use capstan::runtime::PullConfig;
use serde::{Deserialize, Serialize};

use crate::auth::{Role, TokenConfig};

/// The API server's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// A request that takes longer is answered 503 (a claim or a wait may
    /// take up to 30 s of it).
    #[serde(with = "capstan::core::humantime_serde")]
    pub request_timeout: Duration,
    /// A pull worker that makes no call for this long is dead: the rescuer
    /// takes its jobs back.
    #[serde(with = "capstan::core::humantime_serde")]
    pub worker_timeout: Duration,
    /// Longest a claim or a wait waits (a request asking for more is
    /// answered after this long, as if its own wait had ended).
    #[serde(with = "capstan::core::humantime_serde")]
    pub max_wait: Duration,
    /// An event stream with nothing to send sends a keep-alive comment this
    /// often, so proxies and load balancers do not close it as idle.
    #[serde(with = "capstan::core::humantime_serde")]
    pub keep_alive: Duration,
    /// Bearer tokens (their hashes) and what each may do. None: the API is
    /// open, which `serve` allows only on a loopback address.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenConfig>,
}

impl ServerConfig {
    /// The default address: loopback only, port 7400.
    pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";
    /// 8 MiB: a batch of jobs with large args fits; one job's args are at
    /// most 1 MiB anyway.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;
    /// Twice the longest claim or wait.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    /// Under the 30–60 s idle timeouts of common proxies.
    pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

    /// What the pull workers' service needs from these settings.
    pub fn pull(&self) -> PullConfig {
        PullConfig {
            worker_timeout: self.worker_timeout,
            max_wait: self.max_wait,
            ..PullConfig::default()
        }
    }

    /// Check the settings: a server reachable from elsewhere needs tokens,
    /// and the timeouts must leave room for the longest claim.
    ///
    /// # Errors
    /// A message naming the setting and what it needs.
    pub fn validate(&self) -> Result<(), String> {
        if self.tokens.is_empty() && !self.listen.ip().is_loopback() {
            return Err(format!(
                "server.listen = {} is reachable from other machines, and no server.tokens are configured: add tokens (see `capstan token --help`), or listen on 127.0.0.1",
                self.listen
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(format!(
                "server.max_body_bytes = {} is too small: at least 1024",
                self.max_body_bytes
            ));
        }
        if self.max_wait.is_zero() || self.max_wait > Duration::from_secs(300) {
            return Err(format!(
                "server.max_wait = {:?} must be more than zero and at most 5m",
                self.max_wait
            ));
        }
        if self.keep_alive.is_zero() || self.keep_alive > Duration::from_secs(300) {
            return Err(format!(
                "server.keep_alive = {:?} must be more than zero and at most 5m",
                self.keep_alive
            ));
        }
        if self.worker_timeout <= self.max_wait {
            return Err(format!(
                "server.worker_timeout = {:?} must be longer than server.max_wait ({:?}): a worker waiting in a claim would be judged dead",
                self.worker_timeout, self.max_wait
            ));
        }
        if self.request_timeout <= self.max_wait {
            return Err(format!(
                "server.request_timeout = {:?} must be longer than server.max_wait ({:?})",
                self.request_timeout, self.max_wait
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &self.tokens {
            t.validate()?;
            if !names.insert(&t.name) {
                return Err(format!(
                    "server.tokens: the name {:?} is used twice",
                    t.name
                ));
            }
            if t.role != Role::Worker && !t.queues.is_empty() {
                return Err(format!(
                    "server.tokens {:?}: queues limit a worker token only (this one is {})",
                    t.name, t.role
                ));
            }
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: Self::DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7400))),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            worker_timeout: PullConfig::DEFAULT_WORKER_TIMEOUT,
            max_wait: PullConfig::DEFAULT_MAX_WAIT,
            keep_alive: Self::DEFAULT_KEEP_ALIVE,
            tokens: Vec::new(),
        }
    }
}
