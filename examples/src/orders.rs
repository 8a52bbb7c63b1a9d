//! Enqueue inside your own transaction: an order row and the job that mails
//! its receipt commit together, or neither exists. The same code runs on
//! SQLite and PostgreSQL; only your own SQL needs the backend's connection.
//!
//! The shape, on either backend's store (`SqliteStore`, `PgStore`):
//!
//! ```ignore
//! let mut tx = client.store().begin().await?;           // BEGIN (IMMEDIATE on SQLite)
//! sqlx::query("INSERT INTO orders …").execute(&mut *tx).await?;   // your SQL, in it
//! client.enqueue_in(&mut tx, receipt_job(order)).await?; // Capstan's write, in it
//! tx.commit().await?;                                    // both, and workers wake
//! ```
//!
//! Dropping `tx` (an early `?`) rolls both back. Here the store is the
//! URL-chosen [`AnyStore`], whose transaction is an enum: the one line of your
//! own SQL matches on it.

use std::sync::{Arc, Mutex};

use capstan::{
    AnyStore, AnyTx, Client, Config, Enqueued, Handler, JobContext, JobError, NewJob, QueueConfig,
    Store, StoreTx,
};
use serde::{Deserialize, Serialize};

/// The kind of the receipt jobs.
pub const KIND: &str = "orders.send_receipt";

/// The queue receipts wait in.
pub const QUEUE: &str = "mail";

/// A node serving [`QUEUE`].
pub fn config() -> Config {
    Config {
        queues: vec![QueueConfig::new(QUEUE)],
        ..Config::default()
    }
}

/// The application's own table.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, email TEXT NOT NULL, total_cents BIGINT NOT NULL)";

/// An order as the shop takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Its id (the shop's).
    pub id: i64,
    /// Where the receipt goes.
    pub email: String,
    /// What it costs.
    pub total_cents: i64,
}

/// Why an order was not placed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The shop refuses it: nothing was written.
    #[error("order {0} refused: {1}")]
    Refused(i64, &'static str),
    /// The database failed: nothing was written.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Capstan failed: nothing was written.
    #[error(transparent)]
    Capstan(#[from] capstan::RuntimeError),
    /// Beginning or committing failed.
    #[error(transparent)]
    Store(#[from] capstan::StoreError),
}

/// The receipt job of `order`; its idempotency key makes a second placement
/// of the same order answer with the first receipt.
///
/// # Errors
/// Never in practice (an order always encodes); typed as the handler's
/// `job` is.
pub fn receipt_job(order: &Order) -> Result<NewJob, capstan::RuntimeError> {
    Ok(SendReceipt::job(order)?
        .with_queue(QUEUE)
        .with_idempotency_key(format!("receipt:{}", order.id)))
}

/// Create the shop's table.
///
/// # Errors
/// The database's.
pub async fn create_schema(client: &Client<AnyStore>) -> Result<(), OrderError> {
    match client.store() {
        AnyStore::Sqlite(s) => {
            sqlx::raw_sql(SCHEMA).execute(s.writer()).await?;
        }
        AnyStore::Postgres(s) => {
            sqlx::raw_sql(SCHEMA).execute(s.pool()).await?;
        }
    }
    Ok(())
}

/// Place `order`: write it and enqueue its receipt in one transaction. The
/// order is checked *after* both writes, so a refused order shows that a
/// rollback takes the job with it.
///
/// # Errors
/// [`OrderError::Refused`] for an order with no positive total; the
/// database's or Capstan's error otherwise. In every case nothing is written.
pub async fn place_order(client: &Client<AnyStore>, order: &Order) -> Result<Enqueued, OrderError> {
    let mut tx = client.store().begin().await?;
    let insert = "INSERT INTO orders (id, email, total_cents) VALUES ($1, $2, $3)";
    match &mut tx {
        AnyTx::Sqlite(t) => {
            sqlx::query(insert)
                .bind(order.id)
                .bind(&order.email)
                .bind(order.total_cents)
                .execute(&mut **t)
                .await?;
        }
        AnyTx::Postgres(t) => {
            sqlx::query(insert)
                .bind(order.id)
                .bind(&order.email)
                .bind(order.total_cents)
                .execute(&mut **t)
                .await?;
        }
    }
    let receipt = client.enqueue_in(&mut tx, receipt_job(order)?).await?;
    if order.total_cents <= 0 {
        // `tx` is dropped here: the order and its receipt job vanish together.
        return Err(OrderError::Refused(order.id, "the total must be positive"));
    }
    tx.commit().await?;
    Ok(receipt)
}

/// How many orders the shop has.
///
/// # Errors
/// The database's.
pub async fn count_orders(client: &Client<AnyStore>) -> Result<i64, OrderError> {
    let sql = "SELECT count(*) FROM orders";
    Ok(match client.store() {
        AnyStore::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.writer()).await?,
        AnyStore::Postgres(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await?,
    })
}

/// The receipt handler: "sends" each receipt into an in-memory outbox.
#[derive(Debug, Clone, Default)]
pub struct SendReceipt {
    /// The receipts sent, in order.
    pub outbox: Arc<Mutex<Vec<Order>>>,
}

impl Handler for SendReceipt {
    const KIND: &'static str = KIND;
    type Args = Order;
    type Output = ();

    async fn run(&self, _ctx: JobContext, order: Order) -> Result<(), JobError> {
        self.outbox
            .lock()
            .map_err(|_| JobError::permanent("the outbox is poisoned"))?
            .push(order);
        Ok(())
    }
}
