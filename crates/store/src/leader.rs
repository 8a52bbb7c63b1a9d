//! Leadership: which one node runs the cluster-wide maintenance (rescue,
//! set-aside of unhandled jobs, cleaning) for a term.
//!
//! One row per role holds its leader and the end of its term. A node bids
//! on an interval: it wins if there is no leader, if the term has ended, or
//! if it already leads (its term is then extended). Leadership is an
//! economy, not a safety rule: every maintenance statement is safe to run
//! on many nodes at once (each skips rows another is working on), so two
//! nodes that both believe they lead for a moment (a clock skew, a bid in
//! flight) cost a few extra statements and break nothing. What it buys is
//! that N nodes cost the database one node's maintenance, not N.

use std::future::Future;
use std::time::Duration;

use capstan_core::{NodeId, Timestamp};

use crate::StoreResult;

/// A node's bid to lead for a term.
#[derive(Debug, Clone)]
pub struct ElectLeader {
    /// The bidder.
    pub node: NodeId,
    /// Its incarnation (a restarted process with the same node id is a new
    /// bidder, and waits for the old term to end unless it was resigned).
    pub incarnation: String,
    /// How long the term lasts from `now` if the bid wins.
    pub term: Duration,
    /// The time; `None` = the database's clock.
    pub now: Option<Timestamp>,
}

/// A leader giving its term up (a clean stop), so another node may win at
/// its next bid instead of waiting for the term to end.
#[derive(Debug, Clone)]
pub struct ResignLeader {
    /// The leader.
    pub node: NodeId,
    /// Only this incarnation's term (never a successor's).
    pub incarnation: String,
}

/// Leadership of the maintenance services.
pub trait LeaderStore: Send + Sync {
    /// Bid for the term: true if `p.node` (this incarnation) leads until
    /// `now + term`, false if another node's term is still running.
    fn elect_leader(&self, p: &ElectLeader) -> impl Future<Output = StoreResult<bool>> + Send;

    /// End `p.node`'s term now, if it holds it; otherwise change nothing.
    fn resign_leader(&self, p: &ResignLeader) -> impl Future<Output = StoreResult<()>> + Send;
}
