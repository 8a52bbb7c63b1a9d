//! [`LeaderStore`] for [`AnyStore`].

use capstan_store::leader::{ElectLeader, ResignLeader};
use capstan_store::{LeaderStore, StoreResult};

use super::{AnyStore, forward};

impl LeaderStore for AnyStore {
    async fn elect_leader(&self, p: &ElectLeader) -> StoreResult<bool> {
        forward!(self, s => s.elect_leader(p))
    }
    async fn resign_leader(&self, p: &ResignLeader) -> StoreResult<()> {
        forward!(self, s => s.resign_leader(p))
    }
}
