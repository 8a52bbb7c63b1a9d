//! [`QueueStore`] for [`AnyStore`].

use capstan_store::queues::QueueCounts;
use capstan_store::{QueueStore, StoreResult};

use super::{AnyStore, forward};

impl QueueStore for AnyStore {
    async fn queue_counts(&self) -> StoreResult<Vec<QueueCounts>> {
        forward!(self, s => s.queue_counts())
    }
    async fn delete_queue(&self, queue: &str) -> StoreResult<u64> {
        forward!(self, s => s.delete_queue(queue))
    }
}
