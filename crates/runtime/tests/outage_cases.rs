//! The database goes away, or refuses a write: outages are not deaths,
//! completions are not dropped on a blip, and one bad finish never takes
//! the others down.

use std::time::Duration;

use capstan_core::limits::MAX_RESULT_BYTES;
use capstan_core::{ErrorClass, JobState, NewJob, NodeId};
use capstan_runtime::{Client, Config, JobContext, Workers};
use capstan_store_conformance::{Faults, FaultyStore, Harness};
use serde_json::json;

use crate::support::{
    Gates, client, config, enqueue_ids, faulty, gated, noops, until, wait_for_job, wait_for_state,
};

/// Nobody can write for 30 s, longer than the node timeout (25 s); when the
/// database is back, one node's rescuer runs before the other node's
/// heartbeat: it must not take the other's live job (review H2). Both nodes
/// ride the outage through and go on working.
pub(crate) async fn an_outage_longer_than_the_node_timeout_rescues_no_live_job<H: Harness>(h: &H) {
    let gates = Gates::default();
    let (fa, fb) = (Faults::default(), Faults::default());
    let a = faulty(
        h,
        h.store().clone(),
        &fa,
        config().with_node_id(NodeId("a".into())),
    );
    let b = faulty(
        h,
        h.connect_again().await,
        &fb,
        config().with_node_id(NodeId("b".into())),
    );
    let plain = client(h, config());
    let id = plain
        .enqueue(gated("long").with_timeout(Duration::from_secs(3600)))
        .await
        .unwrap()
        .id;
    let node_a = a.node(gates.workers()).unwrap().start();
    gates.started("long", 1).await;
    let node_b = b.node(gates.workers()).unwrap().start();
    until("b to register", || fb.calls("heartbeat_node") > 0).await;
    // The outage.
    fa.set_down(true);
    fb.set_down(true);
    let (beats_a, beats_b) = (fa.calls("heartbeat_node"), fb.calls("heartbeat_node"));
    until("both heartbeats to fail", || {
        fa.calls("heartbeat_node") > beats_a && fb.calls("heartbeat_node") > beats_b
    })
    .await;
    h.clock().advance(Duration::from_secs(30));
    // b comes back first, and its rescuer runs a few times before a beats.
    fb.set_down(false);
    let rescues = fb.calls("rescue");
    until("b's rescuer to run", || fb.calls("rescue") >= rescues + 3).await;
    fa.set_down(false);
    let beats = fa.calls("heartbeat_node");
    until("a to beat again", || {
        fa.calls("heartbeat_node") >= beats + 2
    })
    .await;
    let rescues = fb.calls("rescue");
    until("b's rescuer to run again", || {
        fb.calls("rescue") >= rescues + 3
    })
    .await;
    let j = plain.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Running, "{j:?}");
    assert!(
        j.errors.is_empty(),
        "rescued from a live node: {:?}",
        j.errors
    );
    gates.open("long");
    let j = wait_for_state(&plain, id, JobState::Completed).await;
    assert_eq!(j.attempt, 1);
    assert_eq!(gates.runs("long"), 1);
    // Both nodes work on.
    gates.open("after");
    let after = plain.enqueue(gated("after")).await.unwrap().id;
    wait_for_state(&plain, after, JobState::Completed).await;
    node_a.shutdown().await.unwrap();
    node_b.shutdown().await.unwrap();
}

/// Finishes that cannot be written for a while (a blip: a failover, a
/// pgbouncer restart) are retried until they are, not dropped: the jobs
/// complete once, and nothing is rescued (review M1).
pub(crate) async fn finishes_are_retried_through_a_blip<H: Harness>(h: &H) {
    let faults = Faults::default();
    let mut cfg = config();
    cfg.complete_batch = 2;
    let c = faulty(h, h.store().clone(), &faults, cfg);
    // More failures in a row than the completer used to try; the finishes
    // that pile up meanwhile go out at most `complete_batch` per statement.
    faults.fail_next("finish_many", 7);
    let ids: Vec<_> = enqueue_ids(&c, noops(5)).await;
    let node = c.node(Workers::new()).unwrap().start();
    for id in ids {
        let j = wait_for_state(&c, id, JobState::Completed).await;
        assert_eq!(j.attempt, 1);
        assert!(j.errors.is_empty(), "{:?}", j.errors);
    }
    assert!(faults.calls("finish_many") >= 8);
    assert_eq!(
        faults.largest_finish_batch(),
        2,
        "complete_batch bounds a statement"
    );
    node.shutdown().await.unwrap();
}

/// A node started while the database will not take its registration nor
/// its LISTEN yet keeps trying each, 1 s then 2 s apart (never a busy loop,
/// never giving up on a transient error), and runs jobs once it listens.
pub(crate) async fn a_node_that_cannot_register_nor_listen_yet_retries_with_backoff<H: Harness>(
    h: &H,
) {
    let faults = Faults::default();
    let c = faulty(h, h.store().clone(), &faults, config());
    faults.fail_next("register_node", 2);
    faults.fail_next("subscribe", 2);
    let id = c
        .enqueue(NewJob::new("capstan.noop", json!({})))
        .await
        .unwrap()
        .id;
    let started = tokio::time::Instant::now();
    let node = c.node(Workers::new()).unwrap().start();
    wait_for_state(&c, id, JobState::Completed).await;
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "waited 1 s, then 2 s, to register, and as long to listen: {:?}",
        started.elapsed()
    );
    assert_eq!(faults.calls("register_node"), 3);
    assert_eq!(faults.calls("subscribe"), 3);
    node.shutdown().await.unwrap();
}

/// One finish the database refuses does not take its batch down: the
/// others are written, and the bad one fails its own job with the reason
/// (review H4). Text PostgreSQL cannot store and a result over the limit
/// are handled on both backends alike.
pub(crate) async fn one_bad_finish_never_takes_its_batch_down<H: Harness>(h: &H) {
    let faults = Faults::default();
    let c = faulty(h, h.store().clone(), &faults, config());
    let mut w = Workers::new();
    w.register_fn("nul", |_ctx, _args| async { Ok(json!("a\u{0}b")) })
        .unwrap();
    w.register_fn("huge", |_ctx, _args| async {
        Ok(json!("x".repeat(MAX_RESULT_BYTES)))
    })
    .unwrap();
    let mut jobs = noops(50);
    jobs.push(NewJob::new("capstan.noop", json!({"poison": true})));
    jobs.push(NewJob::new("nul", json!({})));
    jobs.push(NewJob::new("huge", json!({})));
    let ids: Vec<_> = enqueue_ids(&c, jobs).await;
    let (poison, nul, huge) = (ids[50], ids[51], ids[52]);
    faults.refuse_completion_of(poison);
    let node = c.node(w).unwrap().start();
    for id in &ids[..50] {
        let j = wait_for_state(&c, *id, JobState::Completed).await;
        assert!(j.errors.is_empty(), "{:?}", j.errors);
    }
    let p = wait_for_state(&c, poison, JobState::Failed).await;
    assert!(
        p.errors[0].message.contains("refused"),
        "{}",
        p.errors[0].message
    );
    assert_eq!(p.attempt, 1, "failed once, not rescued and run again");
    let n = wait_for_state(&c, nul, JobState::Completed).await;
    assert_eq!(n.result, Some(json!("a\u{FFFD}b")));
    let big = wait_for_state(&c, huge, JobState::Failed).await;
    assert_eq!(big.errors[0].class, ErrorClass::Permanent);
    assert!(
        big.errors[0].message.contains("limit"),
        "{}",
        big.errors[0].message
    );
    node.shutdown().await.unwrap();
}

/// SQLite: another process holds the write lock longer than the node
/// timeout (a long transaction, a big batch). Every node's writes wait; once
/// the lock is free, no node takes another's live job, nor its own.
pub(crate) async fn a_write_lock_held_past_the_node_timeout_rescues_no_live_job(
    h: &capstan_store_conformance::SqliteHarness,
) {
    let cfg = |id: &str| Config {
        heartbeat_interval: Duration::from_millis(300),
        node_timeout: Duration::from_millis(1500),
        rescue_interval: Duration::from_millis(100),
        ..Config::default().with_node_id(NodeId(id.into()))
    };
    let gates = Gates::default();
    let (fa, fb) = (Faults::default(), Faults::default());
    let c = Client::new(h.store().clone());
    let id = c.enqueue(gated("long")).await.unwrap().id;
    let a = Client::with_config(FaultyStore::new(h.store().clone(), fa.clone()), cfg("a"))
        .unwrap()
        .node(gates.workers())
        .unwrap()
        .start();
    let b = Client::with_config(
        FaultyStore::new(h.connect_again().await, fb.clone()),
        cfg("b"),
    )
    .unwrap()
    .node(gates.workers())
    .unwrap()
    .start();
    gates.started("long", 1).await;
    until("both nodes to beat", || {
        fa.calls("heartbeat_node") > 0 && fb.calls("heartbeat_node") > 0
    })
    .await;
    let other = h.connect_again().await;
    let tx = other
        .writer()
        .begin_with("BEGIN IMMEDIATE")
        .await
        .expect("take the write lock");
    // Held past the node timeout (1.5 s).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    tx.rollback().await.unwrap();
    let (ra, rb) = (fa.calls("rescue"), fb.calls("rescue"));
    // Rescues run on the leader only (either node, and leadership may have
    // moved while the lock held every bid back).
    until("a few rescues once the lock is free", || {
        fa.calls("rescue") + fb.calls("rescue") >= ra + rb + 4
    })
    .await;
    let j = c.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Running);
    assert!(
        j.errors.is_empty(),
        "rescued from a live node: {:?}",
        j.errors
    );
    gates.open("long");
    let j = wait_for_job(&c, id, Duration::from_secs(20), |j| j.state.is_finished()).await;
    assert_eq!((j.state, j.attempt), (JobState::Completed, 1));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// PostgreSQL: a main pool taken to its last connection (claims, an
/// application's queries on a shared pool) does not hold the node's
/// heartbeat back: beats have connections of their own (review LM2).
pub(crate) async fn a_busy_pool_does_not_hold_the_heartbeat_back(
    h: &capstan_store_conformance::PgHarness,
) {
    let mut pg = capstan_store_postgres::PgConfig::from_url(&h.url()).unwrap();
    pg.max_connections = 2;
    let store = capstan_store_postgres::PgStore::connect_with(pg)
        .await
        .unwrap();
    let faults = Faults::default();
    let c = faulty(
        h,
        store.clone(),
        &faults,
        config().with_node_id(NodeId("busy".into())),
    );
    let node = c.node(Workers::new()).unwrap().start();
    until("the node to beat", || faults.answered("heartbeat_node") > 0).await;
    // Take every connection the main pool can give (the LISTEN connection
    // holds one of them).
    let mut held = Vec::new();
    while let Ok(Ok(conn)) =
        tokio::time::timeout(Duration::from_millis(500), store.pool().acquire()).await
    {
        held.push(conn);
    }
    assert!(!held.is_empty());
    let before = faults.answered("heartbeat_node");
    until("beats to go on while the pool is taken", || {
        faults.answered("heartbeat_node") >= before + 3
    })
    .await;
    drop(held);
    node.shutdown().await.unwrap();
}

/// While the database refuses to answer, the completer backs off (20 ms
/// doubling up to 250 ms) rather than hammering a server that is trying
/// to come back, and writes the finish once it answers.
pub(crate) async fn the_completer_backs_off_while_finishes_fail<H: Harness>(h: &H) {
    let faults = Faults::default();
    let c = faulty(h, h.store().clone(), &faults, config());
    faults.fail_next("finish_many", 1_000);
    let id = c
        .enqueue(NewJob::new("capstan.noop", json!({})))
        .await
        .unwrap()
        .id;
    let node = c.node(Workers::new()).unwrap().start();
    until("the first try", || faults.calls("finish_many") >= 1).await;
    let first = tokio::time::Instant::now();
    until("four more tries", || faults.calls("finish_many") >= 5).await;
    // Pauses of 20 + 40 + 80 + 160 ms came between them (the first try was
    // seen at most one 5 ms poll late).
    let spent = first.elapsed();
    assert!(
        spent >= Duration::from_millis(290),
        "retried after {spent:?}"
    );
    faults.fail_next("finish_many", 0);
    let j = wait_for_state(&c, id, JobState::Completed).await;
    assert_eq!(j.attempt, 1);
    node.shutdown().await.unwrap();
}

/// A finish that fails while its node shuts down is still retried, for up
/// to `shutdown_grace`, before the node gives up on it: a blip at shutdown
/// does not make finished work run again.
pub(crate) async fn a_finish_that_fails_at_shutdown_is_retried_within_the_grace<H: Harness>(h: &H) {
    let faults = Faults::default();
    let cfg = Config {
        shutdown_grace: Duration::from_secs(1),
        ..config()
    };
    let c = faulty(h, h.store().clone(), &faults, cfg);
    let mut w = Workers::new();
    w.register_fn("until-stopped", |ctx: JobContext, _args| async move {
        ctx.cancelled().await;
        Ok(json!("stopped cleanly"))
    })
    .unwrap();
    let id = c
        .enqueue(NewJob::new("until-stopped", json!({})))
        .await
        .unwrap()
        .id;
    let node = c.node(w).unwrap().start();
    wait_for_state(&c, id, JobState::Running).await;
    // The handler returns only once the shutdown has begun and its grace
    // has run out; its finish then meets three failures.
    faults.fail_next("finish_many", 3);
    node.shutdown().await.unwrap();
    let j = c.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Completed, "{j:?}");
    assert_eq!(j.result, Some(json!("stopped cleanly")));
    assert!(faults.calls("finish_many") >= 4);
}

/// A node beat whose call never answers (no result, no error: a connection
/// a failover left half-open) is given up after half the node timeout, so
/// the node beats again before the others could think it dead.
pub(crate) async fn a_beat_that_never_answers_does_not_hold_the_next_back<H: Harness>(h: &H) {
    let faults = Faults::default();
    let cfg = Config {
        heartbeat_interval: Duration::from_millis(200),
        node_timeout: Duration::from_secs(3),
        ..config()
    };
    let c = faulty(h, h.store().clone(), &faults, cfg);
    let node = c.node(Workers::new()).unwrap().start();
    until("a first beat", || faults.answered("heartbeat_node") >= 1).await;
    faults.hang_next("heartbeat_node", 1);
    let before = faults.calls("heartbeat_node");
    until("the beat that hangs", || {
        faults.calls("heartbeat_node") > before
    })
    .await;
    let hung_at = tokio::time::Instant::now();
    until("the next beat", || {
        faults.calls("heartbeat_node") > before + 1
    })
    .await;
    let gap = hung_at.elapsed();
    assert!(
        gap < Duration::from_secs(3),
        "the next beat came {gap:?} after the one that hung, past the node timeout"
    );
    node.shutdown().await.unwrap();
}
