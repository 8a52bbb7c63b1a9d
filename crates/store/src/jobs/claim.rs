//! Claim: take up to `limit` available jobs of one queue for one node.

use std::time::Duration;

use capstan_core::{NodeId, Timestamp};

/// Claim up to `limit` available jobs of `queue`, highest priority first, then
/// oldest `run_at`, then lowest id, skipping jobs set aside as unhandled. Each
/// claimed job becomes `running`, held by `node` under a new attempt number
/// and a lease token drawn at random for this claim (with the job's id it
/// names one execution: see [`capstan_core::Lease`]), with a lease
/// of its timeout (at most one year) plus `lease_grace` from the claim.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The queue to claim from.
    pub queue: String,
    /// Only these kinds (`None` = any kind).
    pub kinds: Option<Vec<String>>,
    /// At most this many jobs.
    pub limit: u32,
    /// The claiming node.
    pub node: NodeId,
    /// Timeout for jobs that do not carry their own.
    pub default_timeout: Duration,
    /// The lease is `timeout + lease_grace` from the claim.
    pub lease_grace: Duration,
    /// The claim time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}
