//! The transactional-enqueue example, end to end on both backends: the
//! order row and its receipt job commit together or not at all, and a node
//! sends the receipts that committed.

use std::sync::Arc;
use std::time::Duration;

use capstan::store::jobs::ListJobs;
use capstan::{AnyStore, Client, Clock, JobState, QueueStore, Workers};
use capstan_examples::orders::{self, Order, OrderError, SendReceipt};
use capstan_store_conformance::Harness;

fn client<H: Harness>(h: &H) -> Client<AnyStore>
where
    H::Store: Into<AnyStore>,
{
    Client::with_config(h.store().clone().into(), orders::config())
        .expect("valid config")
        .with_clock(Arc::new(h.clock().clone()) as Arc<dyn Clock>)
}

fn order(id: i64, total_cents: i64) -> Order {
    Order {
        id,
        email: format!("{id}@example.com"),
        total_cents,
    }
}

async fn receipts(c: &Client<AnyStore>) -> Vec<capstan::Job> {
    c.list_jobs(&ListJobs {
        queue: Some(orders::QUEUE.into()),
        limit: 100,
        ..ListJobs::default()
    })
    .await
    .expect("list jobs")
}

pub(crate) async fn an_order_and_its_receipt_commit_together_and_the_receipt_is_sent<H: Harness>(
    h: &H,
) where
    H::Store: Into<AnyStore>,
{
    let c = client(h);
    orders::create_schema(&c).await.unwrap();
    let placed = orders::place_order(&c, &order(1, 4200)).await.unwrap();
    assert_eq!(placed.state, JobState::Available);
    assert_eq!(orders::count_orders(&c).await.unwrap(), 1);
    let sender = SendReceipt::default();
    let mut workers = Workers::empty();
    workers.register(sender.clone()).unwrap();
    let node = c.node(workers).unwrap().start();
    let done = c
        .wait(placed.id, Duration::from_secs(20))
        .await
        .expect("the receipt job finishes");
    node.shutdown().await.unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(*sender.outbox.lock().unwrap(), vec![order(1, 4200)]);
}

pub(crate) async fn a_refused_order_leaves_neither_its_row_nor_its_receipt_job<H: Harness>(h: &H)
where
    H::Store: Into<AnyStore>,
{
    let c = client(h);
    orders::create_schema(&c).await.unwrap();
    let refused = orders::place_order(&c, &order(2, 0)).await;
    assert!(
        matches!(refused, Err(OrderError::Refused(2, _))),
        "{refused:?}"
    );
    assert_eq!(orders::count_orders(&c).await.unwrap(), 0);
    assert!(receipts(&c).await.is_empty());
    assert!(c.store().queue_counts().await.unwrap().is_empty());
    // The receipt's idempotency key went with the rollback.
    let placed = orders::place_order(&c, &order(2, 100)).await.unwrap();
    assert!(!placed.existing);
}

pub(crate) async fn an_order_placed_twice_is_refused_by_the_database_and_keeps_one_receipt<
    H: Harness,
>(
    h: &H,
) where
    H::Store: Into<AnyStore>,
{
    let c = client(h);
    orders::create_schema(&c).await.unwrap();
    orders::place_order(&c, &order(3, 500)).await.unwrap();
    let again = orders::place_order(&c, &order(3, 500)).await;
    assert!(matches!(again, Err(OrderError::Database(_))), "{again:?}");
    assert_eq!(orders::count_orders(&c).await.unwrap(), 1);
    assert_eq!(receipts(&c).await.len(), 1);
}
