//! Queues: counts by state, deleting a queue.

use std::time::Duration;

use capstan_store::QueueStore;

use super::fixture::{claim, enqueue, finish, job, node, register};
use crate::Harness;

pub async fn queue_counts_by_state<H: Harness>(h: &H) {
    enqueue(h, (0..4).map(|_| job("k")).collect()).await;
    enqueue(
        h,
        vec![
            job("k").with_delay(Duration::from_secs(60)),
            job("k").with_queue("b"),
        ],
    )
    .await;
    let n = node("n1");
    register(h, &n).await;
    let c = claim(h, "default", 2, &n).await;
    finish(h, vec![super::fixture::complete(&c[0])]).await;
    let counts = h.store().queue_counts().await.unwrap();
    assert_eq!(counts.len(), 2);
    let d = counts.iter().find(|c| c.queue == "default").unwrap();
    assert_eq!(d.queue, "default");
    assert_eq!(
        (
            d.scheduled,
            d.available,
            d.running,
            d.completed,
            d.failed,
            d.cancelled,
            d.retryable,
            d.unhandled
        ),
        (1, 2, 1, 1, 0, 0, 0, 0)
    );
    let b = counts.iter().find(|c| c.queue == "b").unwrap();
    assert_eq!(b.available, 1);
}

pub async fn delete_queue_removes_only_that_queue<H: Harness>(h: &H) {
    enqueue(
        h,
        vec![
            job("k").with_queue("bench"),
            job("k").with_queue("bench"),
            job("k"),
        ],
    )
    .await;
    assert_eq!(h.store().delete_queue("bench").await.unwrap(), 2);
    let counts = h.store().queue_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].queue, "default");
}
