//! Bearer tokens and roles. Tokens are configured as their SHA-256 hashes,
//! never as themselves; a presented token is hashed and compared with
//! every configured hash in constant time, so neither a match nor its
//! position leaks through timing. No token is ever logged.
//!
//! With no tokens configured the API is open (every caller is `admin`):
//! `serve` allows that only on a loopback address.

use std::fmt;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ServerState;
use crate::problem::Problem;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Claim, heartbeat, complete and fail jobs (of its queues).
    Worker,
    /// Enqueue jobs and read.
    Enqueue,
    /// Read only.
    Read,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Worker => "worker",
            Role::Enqueue => "enqueue",
            Role::Read => "read",
        })
    }
}

/// One configured token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs and errors (never the token).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// For a worker token: the queues it may claim from (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
    /// The token's SHA-256, as 64 hex digits.
    pub sha256: String,
}

impl TokenConfig {
    /// Check the name and the hash.
    ///
    /// # Errors
    /// A message naming the token and what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("server.tokens: a token needs a name".into());
        }
        if decode_hash(&self.sha256).is_none() {
            return Err(format!(
                "server.tokens {:?}: sha256 must be the token's SHA-256 as 64 hex digits (e.g. `printf %s \"$TOKEN\" | sha256sum`), not the token itself",
                self.name
            ));
        }
        Ok(())
    }
}

/// The SHA-256 of `token`, in hex: what `sha256` holds.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The configured tokens, decoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tokens {
    tokens: Vec<([u8; 32], Access)>,
}

impl Tokens {
    pub(crate) fn new(configs: &[TokenConfig]) -> Self {
        Tokens {
            tokens: configs
                .iter()
                .filter_map(|t| {
                    decode_hash(&t.sha256).map(|h| {
                        (
                            h,
                            Access {
                                role: t.role,
                                queues: t.queues.clone(),
                            },
                        )
                    })
                })
                .collect(),
        }
    }

    /// The access of `token`: compared with every hash, whatever matches.
    fn find(&self, token: &str) -> Option<Access> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (hash, access) in &self.tokens {
            let mut diff = 0u8;
            for (a, b) in hash.iter().zip(presented.iter()) {
                diff |= a ^ b;
            }
            if diff == 0 && found.is_none() {
                found = Some(access.clone());
            }
        }
        found
    }
}

/// What the caller of a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    role: Role,
    queues: Vec<String>,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Read jobs, queues, nodes.
    Read,
    /// Enqueue jobs.
    Enqueue,
    /// Pull jobs: claim, heartbeat, complete, fail.
    Work,
    /// Cancel and retry jobs.
    Admin,
}

impl Access {
    fn open() -> Self {
        Access {
            role: Role::Admin,
            queues: Vec::new(),
        }
    }

    /// Allow the request, or refuse it with 403.
    pub(crate) fn require(&self, need: Need) -> Result<(), Problem> {
        let ok = matches!(
            (self.role, need),
            (Role::Admin, _)
                | (Role::Worker, Need::Work)
                | (Role::Enqueue, Need::Enqueue | Need::Read)
                | (Role::Read, Need::Read)
        );
        if ok {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "a {} token may not do this (it needs {})",
                self.role,
                match need {
                    Need::Read => "read, enqueue or admin",
                    Need::Enqueue => "enqueue or admin",
                    Need::Work => "worker or admin",
                    Need::Admin => "admin",
                }
            )))
        }
    }

    /// Allow pulling from `queue`, or refuse with 403.
    pub(crate) fn require_queue(&self, queue: &str) -> Result<(), Problem> {
        self.require(Need::Work)?;
        if self.queue_scoped() && !self.queues.iter().any(|q| q == queue) {
            return Err(Problem::forbidden(format!(
                "this worker token may work on the queues {} only, not on {queue}",
                self.queues.join(", ")
            )));
        }
        Ok(())
    }

    /// A worker token limited to some queues: its calls on a job by lease
    /// (heartbeat, complete, fail, release) are checked against the job's
    /// queue too.
    pub(crate) fn queue_scoped(&self) -> bool {
        self.role == Role::Worker && !self.queues.is_empty()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Access>()
            .cloned()
            .ok_or_else(|| Problem::internal("the request was not authenticated"))
    }
}

/// Authenticate a request to the API: with tokens configured, a missing or
/// unknown bearer token is 401; the caller's access goes into the request.
pub(crate) async fn authenticate(
    State(state): State<ServerState>,
    mut req: Request,
    next: Next,
) -> Response {
    let access = if state.tokens.tokens.is_empty() {
        Access::open()
    } else {
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = header.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        });
        match token.map(str::trim).and_then(|t| state.tokens.find(t)) {
            Some(access) => access,
            None => {
                let why = if header.is_none() {
                    "this API needs a token: send `Authorization: Bearer <token>`"
                } else {
                    "the bearer token is not one of the configured tokens"
                };
                return Problem::unauthorized(why).into_response();
            }
        }
    };
    req.extensions_mut().insert(access);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(role: Role, queues: &[&str], secret: &str) -> TokenConfig {
        TokenConfig {
            name: format!("{role}"),
            role,
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            sha256: hash_token(secret),
        }
    }

    #[test]
    fn a_token_is_found_by_its_hash_and_a_wrong_one_is_not() {
        let tokens = Tokens::new(&[
            token(Role::Read, &[], "r"),
            token(Role::Worker, &["q"], "w"),
        ]);
        assert_eq!(tokens.find("w").unwrap().role, Role::Worker);
        assert_eq!(tokens.find("r").unwrap().role, Role::Read);
        assert!(tokens.find("x").is_none());
        assert!(tokens.find("").is_none());
        assert_eq!(
            hash_token("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn each_role_may_do_what_it_says_and_nothing_more() {
        let access = |role, queues: &[&str]| Access {
            role,
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        };
        let read = access(Role::Read, &[]);
        assert!(read.require(Need::Read).is_ok());
        assert!(read.require(Need::Enqueue).is_err());
        assert!(read.require(Need::Work).is_err());
        let enqueue = access(Role::Enqueue, &[]);
        assert!(enqueue.require(Need::Enqueue).is_ok());
        assert!(enqueue.require(Need::Read).is_ok());
        assert!(enqueue.require(Need::Admin).is_err());
        let worker = access(Role::Worker, &["a"]);
        assert!(worker.require_queue("a").is_ok());
        assert!(worker.require_queue("b").is_err());
        assert!(worker.require(Need::Read).is_err());
        assert!(access(Role::Worker, &[]).require_queue("b").is_ok());
        let admin = access(Role::Admin, &[]);
        assert!(admin.require(Need::Admin).is_ok() && admin.require_queue("x").is_ok());
    }

    #[test]
    fn a_hash_that_is_not_64_hex_digits_is_refused_with_a_hint() {
        let mut t = token(Role::Read, &[], "r");
        t.sha256 = "my-secret-token".into();
        assert!(t.validate().unwrap_err().contains("not the token itself"));
    }
}
