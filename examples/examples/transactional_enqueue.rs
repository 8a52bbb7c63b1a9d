//! Enqueue inside your own transaction, run for real: two orders are placed
//! (each row and its receipt job in one transaction), a third is refused
//! after both writes and leaves nothing behind, and a node sends the two
//! receipts.
//!
//! ```text
//! cargo run -p capstan-examples --example transactional_enqueue [-- --database-url URL]
//! ```
//!
//! Without a URL, everything lives in a SQLite file in a temp directory,
//! removed at the end.

use std::error::Error;
use std::time::Duration;

use capstan::{AnyStore, Client, Store, Workers};
use capstan_examples::orders::{self, Order, SendReceipt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = match std::env::args().nth(1).as_deref() {
        None => None,
        Some("--database-url") => Some(
            std::env::args()
                .nth(2)
                .ok_or("--database-url needs a URL")?,
        ),
        Some(other) => {
            println!("usage: transactional_enqueue [--database-url postgres://…|sqlite://path]");
            return Err(format!("unknown argument {other:?}").into());
        }
    };
    let Some(url) = url else {
        let dir = std::env::temp_dir().join(format!("capstan-orders-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let result = run(&format!("sqlite://{}", dir.join("capstan.db").display())).await;
        let _ = std::fs::remove_dir_all(dir);
        return result;
    };
    run(&url).await
}

async fn run(url: &str) -> Result<(), Box<dyn Error>> {
    let store = AnyStore::connect(url).await?;
    store.migrate().await?;
    let client = Client::with_config(store, orders::config())?;
    orders::create_schema(&client).await?;
    let before = orders::count_orders(&client).await?;
    for order in [
        Order {
            id: 1001,
            email: "ada@example.com".into(),
            total_cents: 4200,
        },
        Order {
            id: 1002,
            email: "bob@example.com".into(),
            total_cents: 1999,
        },
        Order {
            id: 1003,
            email: "eve@example.com".into(),
            total_cents: 0,
        },
    ] {
        match orders::place_order(&client, &order).await {
            Ok(receipt) => println!(
                "order {} placed; receipt job {} is {}",
                order.id, receipt.id, receipt.state
            ),
            Err(e) => println!("{e}; neither the order nor its receipt job exists"),
        }
    }
    println!(
        "orders: {} new",
        orders::count_orders(&client).await? - before
    );
    let receipts = SendReceipt::default();
    let mut workers = Workers::new();
    workers.register(receipts.clone())?;
    let node = client.node(workers)?.start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receipts.outbox.lock().map(|o| o.len()).unwrap_or(0) < 2
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await?;
    for order in receipts.outbox.lock().map_err(|_| "poisoned")?.iter() {
        println!("receipt sent to {} for order {}", order.email, order.id);
    }
    let sent = receipts.outbox.lock().map_err(|_| "poisoned")?.len();
    if sent != 2 {
        return Err(format!("{sent} receipts sent within 10 s, expected 2").into());
    }
    Ok(())
}
