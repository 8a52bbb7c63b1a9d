//! Transactions: Capstan's writes inside the caller's transaction commit or
//! roll back with the caller's own SQL, are invisible and unannounced until
//! commit, and savepoints nest.

use capstan_core::{JobState, NewJob};
use capstan_store::jobs::{InsertMany, Inserted};
use capstan_store::{JobStore, QueueStore, Store, StoreError, StoreTx};

use super::fixture::{claim, enqueue, get, job, node, now, register};
use super::notify::{settle, subscribe, wakes};
use crate::Harness;

fn params<H: Harness>(h: &H, jobs: Vec<NewJob>) -> InsertMany {
    InsertMany {
        jobs,
        default_max_attempts: 3,
        now: now(h),
    }
}

async fn insert_in<T: StoreTx, H: Harness>(h: &H, tx: &mut T, jobs: Vec<NewJob>) -> Vec<Inserted> {
    tx.insert_many(&params(h, jobs))
        .await
        .expect("insert in tx")
}

async fn orders<H: Harness>(h: &H) -> i64 {
    h.count("SELECT count(*) FROM app_orders").await
}

pub async fn jobs_and_the_callers_rows_commit_together<H: Harness>(h: &H) {
    h.execute("CREATE TABLE app_orders (id integer PRIMARY KEY)")
        .await;
    let mut tx = h.store().begin().await.unwrap();
    H::execute_in(&mut tx, "INSERT INTO app_orders (id) VALUES (1)").await;
    let inserted = insert_in(h, &mut tx, vec![job("k"), job("k")]).await;
    // Before commit: neither the order nor the jobs exist for anyone else.
    assert!(h.store().get_job(inserted[0].id).await.unwrap().is_none());
    let other = h.connect_again().await;
    assert!(other.get_job(inserted[1].id).await.unwrap().is_none());
    tx.commit().await.unwrap();
    assert_eq!(orders(h).await, 1);
    for i in &inserted {
        assert_eq!(get(h, i.id).await.state, JobState::Available);
    }
    let n = node("n1");
    register(h, &n).await;
    assert_eq!(claim(h, "default", 10, &n).await.len(), 2);
}

pub async fn a_rollback_leaves_neither_the_callers_rows_nor_the_jobs<H: Harness>(h: &H) {
    h.execute("CREATE TABLE app_orders (id integer PRIMARY KEY)")
        .await;
    let mut tx = h.store().begin().await.unwrap();
    H::execute_in(&mut tx, "INSERT INTO app_orders (id) VALUES (1)").await;
    let inserted = insert_in(
        h,
        &mut tx,
        vec![job("k"), job("k").with_idempotency_key("tx-key")],
    )
    .await;
    assert_eq!(inserted.len(), 2);
    tx.rollback().await.unwrap();
    assert_eq!(orders(h).await, 0);
    assert!(h.store().get_job(inserted[0].id).await.unwrap().is_none());
    assert!(h.store().queue_counts().await.unwrap().is_empty());
    // The key was never taken.
    let again = enqueue(h, vec![job("k").with_idempotency_key("tx-key")]).await[0];
    assert!(!again.existing);
    // A transaction dropped without commit rolls back the same way.
    let mut tx = h.store().begin().await.unwrap();
    H::execute_in(&mut tx, "INSERT INTO app_orders (id) VALUES (2)").await;
    let dropped = insert_in(h, &mut tx, vec![job("k")]).await;
    drop(tx);
    assert_eq!(orders(h).await, 0);
    assert!(h.store().get_job(dropped[0].id).await.unwrap().is_none());
}

pub async fn commit_wakes_subscribers_and_rollback_does_not<H: Harness>(h: &H) {
    let mut rx = subscribe(h).await;
    let mut tx = h.store().begin().await.unwrap();
    insert_in(h, &mut tx, vec![job("k").with_queue("txq")]).await;
    // The marker goes out on its own connection while the transaction is open.
    let got = settle(h, &mut rx).await;
    assert!(!wakes(&got, "txq"), "no hint before commit: {got:?}");
    tx.rollback().await.unwrap();
    let got = settle(h, &mut rx).await;
    assert!(!wakes(&got, "txq"), "no hint after a rollback: {got:?}");
    let mut tx = h.store().begin().await.unwrap();
    insert_in(h, &mut tx, vec![job("k").with_queue("txq")]).await;
    tx.commit().await.unwrap();
    let got = settle(h, &mut rx).await;
    assert!(wakes(&got, "txq"), "the commit wakes the queue: {got:?}");
}

pub async fn a_savepoint_commits_into_its_transaction_or_rolls_back_alone<H: Harness>(h: &H) {
    let mut rx = subscribe(h).await;
    let mut tx = h.store().begin().await.unwrap();
    let a = insert_in(h, &mut tx, vec![job("k").with_queue("a")]).await[0].id;
    let mut sp = tx.savepoint().await.unwrap();
    let b = insert_in(
        h,
        &mut sp,
        vec![job("k").with_queue("b").with_idempotency_key("kb")],
    )
    .await[0]
        .id;
    sp.rollback().await.unwrap();
    let mut sp = tx.savepoint().await.unwrap();
    let c = insert_in(h, &mut sp, vec![job("k").with_queue("c")]).await[0].id;
    sp.commit().await.unwrap();
    let got = settle(h, &mut rx).await;
    assert!(
        !wakes(&got, "a") && !wakes(&got, "c"),
        "a savepoint's commit is not the transaction's: {got:?}"
    );
    assert!(h.store().get_job(c).await.unwrap().is_none());
    tx.commit().await.unwrap();
    assert_eq!(get(h, a).await.queue, "a");
    assert_eq!(get(h, c).await.queue, "c");
    // (SQLite may give the rolled-back id to a later job: look by queue.)
    let counts = h.store().queue_counts().await.unwrap();
    assert!(counts.iter().all(|q| q.queue != "b"), "{counts:?}");
    assert!(
        h.store()
            .get_job(b)
            .await
            .unwrap()
            .is_none_or(|j| j.queue != "b")
    );
    let got = settle(h, &mut rx).await;
    assert!(wakes(&got, "a") && wakes(&got, "c"), "{got:?}");
    assert!(
        !wakes(&got, "b"),
        "a rolled-back savepoint wakes no one: {got:?}"
    );
    let again = enqueue(h, vec![job("k").with_idempotency_key("kb")]).await[0];
    assert!(!again.existing, "the rolled-back savepoint's key is free");
}

pub async fn a_refused_job_leaves_the_transaction_usable<H: Harness>(h: &H) {
    let mut tx = h.store().begin().await.unwrap();
    let bad = tx
        .insert_many(&params(
            h,
            vec![job("k"), NewJob::new("", serde_json::json!({}))],
        ))
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    let ok = insert_in(h, &mut tx, vec![job("k")]).await;
    tx.commit().await.unwrap();
    assert_eq!(get(h, ok[0].id).await.state, JobState::Available);
    let counts = h.store().queue_counts().await.unwrap();
    assert_eq!(
        counts.iter().map(|c| c.available).sum::<u64>(),
        1,
        "{counts:?}"
    );
}

pub async fn an_idempotency_key_in_a_transaction_answers_with_the_committed_job<H: Harness>(h: &H) {
    let first = enqueue(h, vec![job("k").with_idempotency_key("order-7")]).await[0];
    let mut tx = h.store().begin().await.unwrap();
    let again = insert_in(h, &mut tx, vec![job("k").with_idempotency_key("order-7")]).await[0];
    tx.commit().await.unwrap();
    assert!(again.existing);
    assert_eq!(again.id, first.id);
}
