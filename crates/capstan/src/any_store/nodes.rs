//! [`NodeStore`] for [`AnyStore`].

use capstan_store::nodes::{
    DeregisterNode, HeartbeatNode, NodeBeat, NodeInfo, RegisterNode, RegisterReport,
};
use capstan_store::{NodeStore, StoreResult};

use super::{AnyStore, forward};

impl NodeStore for AnyStore {
    async fn register_node(&self, p: &RegisterNode) -> StoreResult<RegisterReport> {
        forward!(self, s => s.register_node(p))
    }
    async fn heartbeat_node(&self, p: &HeartbeatNode) -> StoreResult<NodeBeat> {
        forward!(self, s => s.heartbeat_node(p))
    }
    async fn deregister_node(&self, p: &DeregisterNode) -> StoreResult<()> {
        forward!(self, s => s.deregister_node(p))
    }
    async fn list_nodes(&self) -> StoreResult<Vec<NodeInfo>> {
        forward!(self, s => s.list_nodes())
    }
}
