//! Nodes running jobs: exactly once under concurrency, kinds, crashes,
//! fencing, cancellation, wake-ups.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_core::{ErrorClass, JobId, JobState, NewJob, NodeId};
use capstan_runtime::{Client, Config, Workers};
use capstan_store_conformance::{Faults, Harness};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::support::{
    Gates, advance_while_beating, client, config, enqueue_ids, faulty, wait_for_job, wait_for_state,
};

type Calls = Arc<Mutex<HashMap<JobId, usize>>>;

fn counting_workers(calls: Calls) -> Workers {
    let mut w = Workers::empty();
    w.register_fn("count", move |ctx, _args| {
        let calls = calls.clone();
        async move {
            *calls.lock().unwrap().entry(ctx.job_id()).or_default() += 1;
            Ok(Value::Null)
        }
    })
    .unwrap();
    w
}

/// 8 nodes, each with its own connection pool, drain 5,000 jobs each
/// (40,000 in all); the handler counts its calls per job id.
pub(crate) async fn each_job_runs_exactly_once_with_8_concurrent_nodes<H: Harness>(h: &H) {
    const NODES: usize = 8;
    const PER_NODE: usize = 5_000;
    let enqueuer = client(h, config());
    for chunk in 0..(NODES * PER_NODE / 2_000) {
        let jobs = (0..2_000)
            .map(|i| NewJob::new("count", json!({ "i": chunk * 2_000 + i })))
            .collect();
        enqueuer.enqueue_many(jobs).await.unwrap();
    }
    let calls: Calls = Arc::default();
    let mut nodes = Vec::new();
    for n in 0..NODES {
        let store = h.connect_again().await;
        // This test is about claims and finishes: maintenance at its pace.
        let cfg = Config {
            heartbeat_interval: Duration::from_secs(1),
            rescue_interval: Duration::from_secs(1),
            ..config().with_node_id(NodeId(format!("node-{n}")))
        };
        let c = Client::with_config(store, cfg).unwrap();
        nodes.push(c.node(counting_workers(calls.clone())).unwrap().start());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let counts = enqueuer.queue_counts().await.unwrap();
        if counts
            .first()
            .is_some_and(|c| c.completed == (NODES * PER_NODE) as u64)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not drained: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in nodes {
        n.shutdown().await.unwrap();
    }
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), NODES * PER_NODE, "every job ran");
    let twice: Vec<_> = calls.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
}

pub(crate) async fn jobs_of_kinds_without_a_handler_wait_for_one<H: Harness>(h: &H) {
    let c = client(h, config());
    let other = c
        .enqueue(NewJob::new("report.build", json!({})))
        .await
        .unwrap()
        .id;
    let noop = c
        .enqueue(NewJob::new("capstan.noop", json!({"x": 1})))
        .await
        .unwrap()
        .id;
    assert!(!c.is_handled("default", "report.build").await.unwrap());
    let node = c.node(Workers::new()).unwrap().start();
    let done = wait_for_state(&c, noop, JobState::Completed).await;
    assert_eq!(done.result, Some(json!({"x": 1})), "noop returns its args");
    assert!(c.is_handled("default", "capstan.noop").await.unwrap());
    // No live node has a handler for it: it is set aside, out of the claim
    // order, and shown as such.
    let j = wait_for_job(&c, other, Duration::from_secs(20), |j| j.unhandled).await;
    assert_eq!(j.state, JobState::Available);
    assert_eq!(c.queue_counts().await.unwrap()[0].unhandled, 1);
    node.shutdown().await.unwrap();
    // A node that has the handler runs it.
    let mut w = Workers::empty();
    w.register_fn("report.build", |_ctx, _args| async { Ok(json!("built")) })
        .unwrap();
    let node = c.node(w).unwrap().start();
    let j = wait_for_state(&c, other, JobState::Completed).await;
    assert!(!j.unhandled);
    node.shutdown().await.unwrap();
}

/// A node with no handlers, on the harness's store seen through `faults`.
fn idle_node<H: Harness>(h: &H, name: &str, faults: &Faults) -> capstan_runtime::NodeHandle {
    faulty(
        h,
        h.store().clone(),
        faults,
        config().with_node_id(NodeId(name.into())),
    )
    .node(Workers::new())
    .unwrap()
    .start()
}

/// A leader that crashes writes nothing more, its resignation included:
/// the other node takes the led services over only once the crashed one's
/// term (three heartbeat intervals) has ended.
pub(crate) async fn a_crashed_leader_is_replaced_when_its_term_ends<H: Harness>(h: &H) {
    let (fa, fb) = (Faults::default(), Faults::default());
    let a = idle_node(h, "a", &fa);
    crate::support::until("a leads", || fa.calls("rescue") > 0).await;
    let b = idle_node(h, "b", &fb);
    a.abort().await;
    assert_eq!(fa.calls("resign_leader"), 0, "a crash does not resign");
    let bids = fb.calls("elect_leader");
    crate::support::until("ten more bids of b", || {
        fb.calls("elect_leader") >= bids + 10
    })
    .await;
    assert_eq!(
        fb.calls("rescue"),
        0,
        "a's term (on the clock, which stands still) runs"
    );
    // The term is 3 × 100 ms; a step this short is no stall.
    h.clock().advance(Duration::from_millis(350));
    crate::support::until("b leads", || fb.calls("rescue") > 0).await;
    b.shutdown().await.unwrap();
}

/// The leader serves another queue: a job nobody can run at the head of
/// this node's queue is still set aside (each node walks its own queues'
/// heads), so it does not sit in front of every claim.
pub(crate) async fn a_leader_on_another_queue_leaves_no_queue_unparked<H: Harness>(h: &H) {
    let on = |name: &str, queue: &str| {
        let mut cfg = config().with_node_id(NodeId(name.into()));
        cfg.queues = vec![capstan_runtime::QueueConfig::new(queue)];
        cfg
    };
    let faults = Faults::default();
    let leader = faulty(h, h.store().clone(), &faults, on("leader", "elsewhere"))
        .node(Workers::new())
        .unwrap()
        .start();
    crate::support::until("the first node leads", || faults.calls("rescue") > 0).await;
    let c = client(h, on("follower", "default"));
    let stray = c
        .enqueue(NewJob::new("report.build", json!({})))
        .await
        .unwrap()
        .id;
    let node = c.node(Workers::new()).unwrap().start();
    let j = wait_for_job(&c, stray, Duration::from_secs(20), |j| j.unhandled).await;
    assert_eq!(j.state, JobState::Available);
    node.shutdown().await.unwrap();
    leader.shutdown().await.unwrap();
}

/// A second live process may not use a node id (fencing and reclaim rely on
/// it): it is refused with a message that says so. A process restarted
/// under the id of one that crashed takes it over, and its jobs back.
pub(crate) async fn a_node_id_in_use_is_refused_and_a_crashed_ones_taken_over<H: Harness>(h: &H) {
    let gates = Gates::default();
    let c = client(h, config());
    let id = c.enqueue(crate::support::gated("held")).await.unwrap().id;
    // The first process beats every second (its rescuer, which beats too,
    // hardly ever runs): a newcomer must wait out more than one of its
    // beats, however soon after one it asks.
    let slow = Config {
        heartbeat_interval: Duration::from_secs(1),
        rescue_interval: Duration::from_secs(600),
        ..config()
    };
    let first = client(h, slow.with_node_id(NodeId("web-1".into())))
        .node(gates.workers())
        .unwrap()
        .start();
    gates.started("held", 1).await;
    let seen = beats_of(&c, "web-1").await;
    while beats_of(&c, "web-1").await == seen {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Right after a beat of the first, the twin asks for the id.
    let twin = client(h, config().with_node_id(NodeId("web-1".into())))
        .node(gates.workers())
        .unwrap()
        .run(std::future::pending())
        .await;
    let err = twin.expect_err("a second live process with the same node id");
    assert!(
        err.to_string().contains("web-1") && err.to_string().contains("in use"),
        "{err}"
    );
    assert_eq!(
        c.job(id).await.unwrap().unwrap().attempt,
        1,
        "the twin took nothing"
    );
    first.abort().await;
    gates.open("held");
    let again = client(h, config().with_node_id(NodeId("web-1".into())))
        .node(gates.workers())
        .unwrap()
        .start();
    let j = wait_for_state(&c, id, JobState::Completed).await;
    assert_eq!(j.attempt, 2);
    assert!(j.errors[0].message.contains("restarted"), "{:?}", j.errors);
    again.shutdown().await.unwrap();
}

/// How many times node `id` has beaten, if it has a row.
async fn beats_of<S: capstan_store::Store>(c: &Client<S>, id: &str) -> Option<u64> {
    let nodes = c.nodes().await.unwrap();
    nodes.iter().find(|n| n.id.as_str() == id).map(|n| n.beats)
}

/// A handler factory (a `register_fn` closure) that panics before it even
/// returns its future is caught like a handler panic: the attempt fails as
/// panicked and the job moves on, instead of sitting `running` (review L5).
pub(crate) async fn a_handler_factory_that_panics_fails_the_attempt<H: Harness>(h: &H) {
    let mut cfg = config();
    cfg.retry.default = capstan_core::RetryPolicy::exponential(2, Duration::ZERO, 2.0);
    let c = client(h, cfg);
    let mut w = Workers::empty();
    w.register_fn("factory-panics", |_ctx, args: Value| {
        if args["explode"] == json!(true) {
            panic!("the factory exploded");
        }
        async { Ok(Value::Null) }
    })
    .unwrap();
    let id = c
        .enqueue(NewJob::new("factory-panics", json!({"explode": true})))
        .await
        .unwrap()
        .id;
    let node = c.node(w).unwrap().start();
    let j = wait_for_state(&c, id, JobState::Failed).await;
    let classes: Vec<_> = j.errors.iter().map(|e| e.class).collect();
    assert_eq!(classes, vec![ErrorClass::Panicked, ErrorClass::Panicked]);
    assert!(j.errors[0].message.contains("the factory exploded"));
    node.shutdown().await.unwrap();
}

fn blocking_workers(started: Arc<Notify>, release: Arc<Notify>, tag: &'static str) -> Workers {
    let mut w = Workers::empty();
    w.register_fn("block", move |_ctx, _args| {
        let (started, release) = (started.clone(), release.clone());
        async move {
            started.notify_one();
            release.notified().await;
            Ok(json!(tag))
        }
    })
    .unwrap();
    w
}

pub(crate) async fn a_crashed_nodes_job_is_rescued_and_run_elsewhere<H: Harness>(h: &H) {
    let c = client(h, config());
    let id = c.enqueue(NewJob::new("block", json!({}))).await.unwrap().id;
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let a = client(h, config().with_node_id(NodeId("a".into())))
        .node(blocking_workers(started.clone(), release.clone(), "a"))
        .unwrap()
        .start();
    started.notified().await;
    a.abort().await; // a crash: no hand-back, no deregistration, no more heartbeats
    let b = client(h, config().with_node_id(NodeId("b".into())))
        .node(blocking_workers(
            Arc::new(Notify::new()),
            release.clone(),
            "b",
        ))
        .unwrap()
        .start();
    // `b` must itself have been able to write for a node timeout (25 s)
    // before it may judge `a` dead: it beats all along while time passes.
    advance_while_beating(&c, h.clock(), &["b"], Duration::from_secs(26)).await;
    let j = wait_for_job(&c, id, Duration::from_secs(20), |j| {
        j.state == JobState::Running && j.node_id.as_ref().is_some_and(|n| n.0 == "b")
    })
    .await;
    assert_eq!(j.attempt, 2);
    assert_eq!(j.errors[0].class, ErrorClass::Rescued);
    release.notify_waiters();
    release.notify_one();
    let j = wait_for_state(&c, id, JobState::Completed).await;
    assert_eq!(j.result, Some(json!("b")));
    b.shutdown().await.unwrap();
}

pub(crate) async fn a_stale_holder_cannot_finish_a_rescued_job<H: Harness>(h: &H) {
    let c = client(h, config());
    let id = c.enqueue(NewJob::new("block", json!({}))).await.unwrap().id;
    let (a_started, a_release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    // `slow` has a clock of its own that stands still: from the moment the
    // shared clock moves on, its heartbeats look 60 s old, as a stuck node's would.
    let frozen = Arc::new(capstan_core::ManualClock::new(capstan_core::Clock::now(
        h.clock(),
    )));
    let a = Client::with_config(
        h.store().clone(),
        config().with_node_id(NodeId("slow".into())),
    )
    .unwrap()
    .with_clock(frozen)
    .node(blocking_workers(
        a_started.clone(),
        a_release.clone(),
        "slow",
    ))
    .unwrap()
    .start();
    a_started.notified().await;
    h.clock().advance(Duration::from_secs(60));
    let report = crate::support::rescue(&c).await;
    assert_eq!(report.retried, vec![id]);
    let (b_started, b_release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let b = client(h, config().with_node_id(NodeId("fast".into())))
        .node(blocking_workers(
            b_started.clone(),
            b_release.clone(),
            "fast",
        ))
        .unwrap()
        .start();
    b_started.notified().await;
    // The slow worker finishes now: fenced, nothing changes.
    a_release.notify_one();
    a.shutdown().await.unwrap();
    let j = c.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.node_id.as_ref().map(|n| n.0.as_str()), Some("fast"));
    b_release.notify_one();
    let j = wait_for_state(&c, id, JobState::Completed).await;
    assert_eq!(j.result, Some(json!("fast")));
    b.shutdown().await.unwrap();
}

pub(crate) async fn cancel_stops_a_running_handler<H: Harness>(h: &H) {
    let c = client(h, config());
    let id = c
        .enqueue(NewJob::new("capstan.sleep", json!({"ms": 60_000})))
        .await
        .unwrap()
        .id;
    let node = c.node(Workers::new()).unwrap().start();
    wait_for_state(&c, id, JobState::Running).await;
    let started = tokio::time::Instant::now();
    c.cancel(id).await.unwrap();
    let j = wait_for_state(&c, id, JobState::Cancelled).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(j.errors.last().unwrap().class, ErrorClass::Cancelled);
    node.shutdown().await.unwrap();
}

pub(crate) async fn idle_node_wakes_on_enqueue_without_polling<H: Harness>(h: &H) {
    // Polling would take 30 s here: only a wake-up can start the job in time.
    let cfg = Config {
        poll_initial: Duration::from_secs(30),
        poll_max: Duration::from_secs(30),
        ..config()
    };
    let c = client(h, cfg);
    let faults = Faults::default();
    let node = faulty(h, h.store().clone(), &faults, c.config().clone())
        .node(Workers::new())
        .unwrap()
        .start();
    // The node is idle once its first claim came back empty.
    crate::support::until("the node's first claim", || faults.answered("claim") > 0).await;
    let other = h.connect_again().await;
    let id = Client::new(other)
        .with_clock(c.clock().clone())
        .enqueue(NewJob::new("capstan.noop", json!({})))
        .await
        .unwrap()
        .id;
    wait_for_job(&c, id, Duration::from_secs(10), |j| {
        j.state == JobState::Completed
    })
    .await;
    node.shutdown().await.unwrap();
}

/// A producer that resumes each claim after its last full one still claims
/// a higher-priority job enqueued meanwhile next: the enqueue's wake-up sends
/// its next claim back to the head of the queue.
pub(crate) async fn a_higher_priority_job_enqueued_during_a_drain_is_claimed_next<H: Harness>(
    h: &H,
) {
    let mut cfg = config();
    cfg.queues[0].concurrency = 1;
    cfg.claim_batch = 1; // every claim is full: the next resumes after it
    let c = client(h, cfg);
    let gates = Gates::default();
    let a = c.enqueue(crate::support::gated("a")).await.unwrap().id;
    c.enqueue(crate::support::gated("b")).await.unwrap();
    let node = c.node(gates.workers()).unwrap().start();
    gates.started("a", 1).await;
    c.enqueue(crate::support::gated("h").with_priority(5))
        .await
        .unwrap();
    // Let the wake-up reach the node before the slot frees.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gates.open("a");
    wait_for_state(&c, a, JobState::Completed).await;
    gates.started("h", 1).await;
    assert_eq!(gates.runs("b"), 0, "the higher priority went first");
    gates.open("h");
    gates.open("b");
    gates.started("b", 1).await;
    node.shutdown().await.unwrap();
}

/// Each queue runs at most its own concurrency at once on a node, and
/// reaches it when there is work.
pub(crate) async fn each_queue_runs_at_most_its_concurrency<H: Harness>(h: &H) {
    let cfg = Config {
        queues: vec![
            capstan_runtime::QueueConfig::new("narrow").with_concurrency(2),
            capstan_runtime::QueueConfig::new("wide").with_concurrency(6),
        ],
        ..config()
    };
    let c = client(h, cfg);
    let gauges: Arc<Mutex<HashMap<String, (usize, usize)>>> = Arc::default();
    let mut w = Workers::empty();
    {
        let gauges = gauges.clone();
        w.register_fn("gauge", move |ctx, _args| {
            let gauges = gauges.clone();
            async move {
                let queue = ctx.queue().to_owned();
                {
                    let mut g = gauges.lock().unwrap();
                    let e = g.entry(queue.clone()).or_default();
                    e.0 += 1;
                    e.1 = e.1.max(e.0);
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
                gauges.lock().unwrap().get_mut(&queue).unwrap().0 -= 1;
                Ok(Value::Null)
            }
        })
        .unwrap();
    }
    let mut jobs = Vec::new();
    for q in ["narrow", "wide"] {
        for _ in 0..24 {
            jobs.push(NewJob::new("gauge", json!({})).with_queue(q));
        }
    }
    let ids: Vec<JobId> = enqueue_ids(&c, jobs).await;
    let node = c.node(w).unwrap().start();
    for id in ids {
        wait_for_state(&c, id, JobState::Completed).await;
    }
    node.shutdown().await.unwrap();
    let g = gauges.lock().unwrap();
    assert_eq!(g["narrow"].1, 2, "narrow peaked at {}", g["narrow"].1);
    assert_eq!(g["wide"].1, 6, "wide peaked at {}", g["wide"].1);
}

/// An idle node does not spin: over a few heartbeats, each maintenance
/// service calls the database about once per interval (the parker and the
/// rescuer every `rescue_interval`, the scheduler every
/// `schedule_interval`), and the producer only polls.
pub(crate) async fn an_idle_node_calls_the_database_once_per_interval<H: Harness>(h: &H) {
    let c = client(h, config());
    let faults = Faults::default();
    let node = faulty(h, h.store().clone(), &faults, c.config().clone())
        .node(Workers::new())
        .unwrap()
        .start();
    let ops = ["mark_unhandled", "rescue", "promote_due", "claim"];
    crate::support::until("the node's first claim", || faults.answered("claim") > 0).await;
    let before: Vec<u64> = ops.iter().map(|op| faults.calls(op)).collect();
    let started = tokio::time::Instant::now();
    let beats = faults.calls("heartbeat_node");
    crate::support::until("ten more beats", || {
        faults.calls("heartbeat_node") >= beats + 10
    })
    .await;
    // Ten beats 100 ms apart: at least a second. Allow each service twice
    // its pace over the time that really passed.
    let spent = started.elapsed();
    let per = |interval: Duration| 2 * (spent.as_millis() / interval.as_millis()) as u64 + 4;
    let cfg = c.config();
    let bounds = [
        per(cfg.rescue_interval),
        per(cfg.rescue_interval),
        per(cfg.schedule_interval),
        per(cfg.poll_initial),
    ];
    for ((op, before), bound) in ops.iter().zip(before).zip(bounds) {
        let made = faults.calls(op) - before;
        assert!(
            made <= bound,
            "{op}: {made} calls in {spent:?} (at most {bound})"
        );
    }
    node.shutdown().await.unwrap();
}

/// Two nodes on one database: the rescuer and the cleaner run on one of
/// them only (the leader), the scheduler and the parker on both; when the
/// leader stops, it resigns and the other takes the services over at its
/// next bid, not a term later.
pub(crate) async fn maintenance_runs_on_the_leader_only_and_moves_when_it_stops<H: Harness>(h: &H) {
    let led = ["rescue", "delete_finished"];
    let (fa, fb) = (Faults::default(), Faults::default());
    let a = idle_node(h, "a", &fa);
    crate::support::until("a leads", || fa.calls("rescue") > 0).await;
    let b = idle_node(h, "b", &fb);
    // Bids every heartbeat (100 ms): after ten of b's, b has had every
    // chance to take over, and must not have while a leads.
    crate::support::until("ten bids of b", || fb.calls("elect_leader") >= 10).await;
    for op in led {
        assert_eq!(fb.calls(op), 0, "{op} ran on b while a leads");
    }
    for op in ["promote_due", "mark_unhandled"] {
        assert!(fa.calls(op) > 0 && fb.calls(op) > 0, "{op} runs on both");
    }
    assert!(fa.calls("delete_finished") > 0);
    // Well within a's term (a node timeout, 25 s on the shared clock, which
    // stands still): only the resignation lets b take over.
    a.shutdown().await.unwrap();
    crate::support::until("b leads", || fb.calls("rescue") > 0).await;
    b.shutdown().await.unwrap();
}

/// More due jobs than one promotion takes (1,000) are all promoted at once,
/// batch after batch, not one batch per `schedule_interval`.
pub(crate) async fn a_backlog_of_due_jobs_is_promoted_batch_after_batch<H: Harness>(h: &H) {
    let cfg = Config {
        schedule_interval: Duration::from_secs(3600),
        ..config()
    };
    let c = client(h, cfg);
    // In a queue the node does not serve: promoted, never run.
    let jobs: Vec<NewJob> = (0..1_001)
        .map(|i| {
            NewJob::new("capstan.noop", json!({ "i": i }))
                .with_queue("elsewhere")
                .with_delay(Duration::from_secs(60))
        })
        .collect();
    c.enqueue_many(jobs).await.unwrap();
    h.clock().advance(Duration::from_secs(120));
    let node = c.node(Workers::new()).unwrap().start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let counts = c.queue_counts().await.unwrap();
        let scheduled: u64 = counts.iter().map(|q| q.scheduled).sum();
        if scheduled == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{scheduled} due jobs still scheduled: promoted one batch per interval"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.shutdown().await.unwrap();
}

/// A node says which jobs it claimed and finished while someone watches
/// (a `WATCH` heard), and says nothing while nobody does.
pub(crate) async fn a_watched_node_says_which_jobs_changed_and_an_unwatched_one_is_silent<
    H: Harness,
>(
    h: &H,
) {
    use capstan_runtime::changes;
    use capstan_store::{Notification, Received, Store};
    let c = client(h, config());
    let node = c.node(Workers::new()).unwrap().start();
    let mut hints = h.store().subscribe(&[changes::CHANGES]).await.unwrap();
    // Unwatched: a job runs, no hint.
    let quiet = c
        .enqueue(NewJob::new("capstan.noop", json!({})))
        .await
        .unwrap()
        .id;
    wait_for_job(&c, quiet, Duration::from_secs(10), |j| {
        j.state == JobState::Completed
    })
    .await;
    // Watched: its claim and its finish are named.
    h.store()
        .notify(Notification::new(changes::WATCH, ""))
        .await
        .unwrap();
    crate::support::until("the node heard the watch", || c.hints().is_watched()).await;
    let id = c
        .enqueue(NewJob::new("capstan.noop", json!({})))
        .await
        .unwrap()
        .id;
    wait_for_job(&c, id, Duration::from_secs(10), |j| {
        j.state == JobState::Completed
    })
    .await;
    let mut named = Vec::new();
    while named.iter().filter(|i| **i == id).count() < 2 {
        let got = tokio::time::timeout(Duration::from_secs(10), hints.recv())
            .await
            .expect("a hint for the claim and one for the finish");
        if let Some(Received::Notification(n)) = got {
            named.extend(changes::parse(&n.payload));
        }
    }
    assert!(!named.contains(&quiet), "no hint while nobody watched");
    node.shutdown().await.unwrap();
}
