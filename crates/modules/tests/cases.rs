//! What a user of the freshness cache relies on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use capstan_core::Clock;
use capstan_modules::{
    EntryStatus, ModuleConfig, ModuleError, RefreshFuture, Refreshed, Refresher, Served,
};
use capstan_store::Store;
use capstan_store_conformance::Harness;
use serde_json::json;
use tokio::sync::oneshot;

use crate::support::{Answer, Upstream, entry, eventually, landed, node, until};

fn config() -> ModuleConfig {
    ModuleConfig {
        ttl: Duration::from_secs(60),
        stale_ttl: Duration::from_secs(600),
        retry_base: Duration::from_secs(30),
        retry_max: Duration::from_secs(60),
        jitter: 0.0,
        ..ModuleConfig::default()
    }
}

pub(crate) async fn a_cold_key_read_by_1000_callers_over_3_nodes_is_fetched_once<H: Harness>(
    h: &H,
) {
    let up = Upstream::default();
    up.then(Answer::Slow(
        Duration::from_millis(300),
        json!({"price": 181.2}),
    ));
    let nodes = [
        node(h, "a", config(), &up).await,
        node(h, "b", config(), &up).await,
        node(h, "c", config(), &up).await,
    ];
    let reads: Vec<_> = (0..1000)
        .map(|i| {
            let n = nodes[i % 3].clone();
            tokio::spawn(async move { n.get("quotes", "nvda").await })
        })
        .collect();
    let mut served = std::collections::BTreeMap::new();
    for r in reads {
        let got = r.await.unwrap().unwrap();
        assert_eq!(got.value, Some(json!({"price": 181.2})));
        *served.entry(format!("{:?}", got.served)).or_insert(0) += 1;
    }
    assert_eq!(up.calls(), 1, "one refresh across every node: {served:?}");
    let stats: Vec<_> = nodes.iter().map(|n| n.stats("quotes").unwrap()).collect();
    assert_eq!(
        stats.iter().map(|s| s.refreshes).sum::<u64>(),
        1,
        "{stats:?}"
    );
    // Reads past L1 and L2 joined their node's flight; the few flights
    // (one per node at least) found the lock held or the entry fresh.
    let misses: u64 = stats.iter().map(|s| s.misses).sum();
    let joined: u64 = stats.iter().map(|s| s.coalesced).sum();
    assert!(misses - joined < 30, "{stats:?}, {served:?}");
    let e = entry(h, "nvda").await;
    assert_eq!((e.status, e.lock_owner), (EntryStatus::Ready, None));
}

pub(crate) async fn fresh_stale_and_refresh_ahead_follow_the_clock<H: Harness>(h: &H) {
    let up = Upstream::default();
    let cfg = ModuleConfig {
        refresh_ahead: Some(Duration::from_secs(10)),
        ..config()
    };
    let n = node(h, "a", cfg, &up).await;
    let first = n.get("quotes", "amd").await.unwrap();
    assert_eq!((first.served, first.fresh), (Served::Refreshed, true));
    assert_eq!(first.value, Some(json!({"key": "amd", "call": 1})));
    let again = n.get("quotes", "amd").await.unwrap();
    assert_eq!(
        (again.served, again.value.clone(), again.age),
        (Served::L1, first.value.clone(), Some(Duration::ZERO))
    );
    // Within 10 s of expiry: still served fresh, and refreshed ahead.
    h.clock().advance(Duration::from_secs(55));
    let near = n.get("quotes", "amd").await.unwrap();
    assert_eq!(
        (near.served, near.age),
        (Served::L1, Some(Duration::from_secs(55)))
    );
    until("the refresh ahead ran", || up.calls() == 2).await;
    landed(&n).await;
    let renewed = eventually("the renewed value is served", || async {
        let got = n.get("quotes", "amd").await.unwrap();
        (got.value == Some(json!({"key": "amd", "call": 2}))).then_some(got)
    })
    .await;
    assert!(renewed.fresh && renewed.age == Some(Duration::ZERO));
    // Past its ttl: served stale at once, refreshed in the background.
    h.clock().advance(Duration::from_secs(70));
    let stale = n.get("quotes", "amd").await.unwrap();
    assert_eq!((stale.served, stale.fresh), (Served::Stale, false));
    assert_eq!(stale.value, renewed.value);
    until("the stale value was refreshed", || up.calls() == 3).await;
    landed(&n).await;
    // Past the stale window too: the read waits for a refresh.
    h.clock().advance(Duration::from_secs(700));
    let waited = n.get("quotes", "amd").await.unwrap();
    assert_eq!(waited.served, Served::Refreshed);
    assert_eq!(waited.value, Some(json!({"key": "amd", "call": 4})));
    let s = n.stats("quotes").unwrap();
    assert_eq!(
        (s.refreshes, s.stale_served, s.failures),
        (4, 1, 0),
        "{s:?}"
    );
    assert!(s.l1_hits >= 2, "{s:?}");
}

pub(crate) async fn a_failed_refresh_serves_stale_with_its_error_and_backs_off<H: Harness>(h: &H) {
    let up = Upstream::default();
    up.then(Answer::Value(json!(100)))
        .then(Answer::Fail("upstream answered 503"))
        .then(Answer::Fail("upstream answered 503 again"));
    let n = node(h, "a", config(), &up).await;
    assert_eq!(
        n.get("quotes", "tsla").await.unwrap().value,
        Some(json!(100))
    );
    h.clock().advance(Duration::from_secs(61));
    let stale = n.get("quotes", "tsla").await.unwrap();
    assert_eq!(stale.served, Served::Stale);
    until("the background refresh ran", || up.calls() == 2).await;
    landed(&n).await;
    let e = entry(h, "tsla").await;
    assert_eq!(
        (e.status, e.lock_owner.clone(), e.failures),
        (EntryStatus::Error, None, 1),
        "released with its status"
    );
    assert_eq!(
        e.retry_at,
        Some(h.clock().now() + chrono::Duration::seconds(30)),
        "retry_base, no jitter"
    );
    // Backing off: the last good value with the error, no new call.
    let served = n.get("quotes", "tsla").await.unwrap();
    assert_eq!(
        (served.served, served.value.clone(), served.error.as_deref()),
        (
            Served::StaleIfError,
            Some(json!(100)),
            Some("upstream answered 503")
        )
    );
    assert_eq!(up.calls(), 2);
    // The backoff over: tried again (and failed again, doubling it).
    h.clock().advance(Duration::from_secs(31));
    assert_eq!(
        n.get("quotes", "tsla").await.unwrap().served,
        Served::StaleIfError
    );
    until("retried after the backoff", || up.calls() == 3).await;
    landed(&n).await;
    let e = entry(h, "tsla").await;
    assert_eq!((e.failures, e.lock_owner.as_deref()), (2, None));
    assert_eq!(
        e.retry_at,
        Some(h.clock().now() + chrono::Duration::seconds(60))
    );
    // Past the stale window, still failing: nothing to serve, said why.
    h.clock().advance(Duration::from_secs(700));
    up.then(Answer::Fail("still down"));
    match n.get("quotes", "tsla").await {
        Err(ModuleError::Refresh {
            message, retry_at, ..
        }) => {
            assert_eq!(message, "still down");
            assert!(retry_at.is_some());
        }
        other => panic!("{other:?}"),
    }
}

pub(crate) async fn a_refresher_that_panics_or_hangs_still_releases_the_lock<H: Harness>(h: &H) {
    let up = Upstream::default();
    up.then(Answer::Panic).then(Answer::Hang);
    let cfg = ModuleConfig {
        refresh_timeout: Duration::from_secs(1),
        ..config()
    };
    let n = node(h, "a", cfg, &up).await;
    match n.get("quotes", "gme").await {
        Err(ModuleError::Refresh { message, .. }) => {
            assert!(
                message.contains("panicked: the upstream blew up"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let e = entry(h, "gme").await;
    assert_eq!((e.status, e.lock_owner), (EntryStatus::Error, None));
    h.clock().advance(Duration::from_secs(31));
    match n.get("quotes", "gme").await {
        Err(ModuleError::Refresh { message, .. }) => {
            assert!(message.contains("did not answer within 1s"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let e = entry(h, "gme").await;
    assert_eq!(
        (e.status, e.lock_owner, e.failures),
        (EntryStatus::Error, None, 2)
    );
    assert_eq!(n.stats("quotes").unwrap().failures, 2);
}

pub(crate) async fn a_refresh_slower_than_its_lease_is_taken_over_and_its_late_write_fenced<
    H: Harness,
>(
    h: &H,
) {
    let slow = Upstream::default();
    let (open, gate) = oneshot::channel();
    slow.then(Answer::Gate(gate));
    let a = node(h, "a", config(), &slow).await;
    let b_up = Upstream::default();
    b_up.then(Answer::Value(json!("from b")));
    let b = node(h, "b", config(), &b_up).await;
    let waiting = {
        let a = a.clone();
        tokio::spawn(async move { a.get("quotes", "pltr").await })
    };
    until("a holds the lock", || slow.calls() == 1).await;
    // Past a's lease (refresh_timeout 10 s: the lease is 16 s).
    h.clock().advance(Duration::from_secs(17));
    let got = b.get("quotes", "pltr").await.unwrap();
    assert_eq!(got.value, Some(json!("from b")), "b took the lock over");
    // a's refresher answers at last: its write is refused.
    open.send(json!("late, from a")).unwrap();
    let a_got = waiting.await.unwrap().unwrap();
    assert_eq!(a_got.value, Some(json!("from b")), "a serves what is there");
    assert_eq!(a.stats("quotes").unwrap().fenced, 1);
    let e = entry(h, "pltr").await;
    assert_eq!((e.value, e.lock_owner), (Some(json!("from b")), None));
}

pub(crate) async fn writes_and_invalidations_reach_every_nodes_memory<H: Harness>(h: &H) {
    let up = Upstream::default();
    let a = node(h, "a", config(), &up).await;
    let b = node(h, "b", config(), &up).await;
    let first = a.get("quotes", "meta").await.unwrap().value;
    assert_eq!(b.get("quotes", "meta").await.unwrap().served, Served::L2);
    // (On SQLite a node cannot tell which entries another store's commits
    // touched: it reads its memory's entries from the database again.)
    let again = b.get("quotes", "meta").await.unwrap();
    if h.store().capabilities().listen_notify {
        assert_eq!(again.served, Served::L1);
    } else {
        assert!(matches!(again.served, Served::L1 | Served::L2), "{again:?}");
    }
    // A put on a: b's memory drops its copy, and b reads the new value.
    a.put("quotes", "meta", json!({"price": 600}))
        .await
        .unwrap();
    let seen = eventually("b sees a's put", || async {
        let got = b.get("quotes", "meta").await.unwrap();
        (got.value == Some(json!({"price": 600}))).then_some(got)
    })
    .await;
    assert!(seen.fresh);
    assert_eq!(up.calls(), 1, "a put is not a refresh");
    // An invalidation on b: a's memory drops it, and a refreshes.
    assert_eq!(b.invalidate("quotes", Some("meta")).await.unwrap(), 1);
    eventually("a drops its copy", || async {
        let got = a.get("quotes", "meta").await.unwrap();
        (got.value != Some(json!({"price": 600}))).then_some(())
    })
    .await;
    assert_eq!(up.calls(), 2);
    assert_ne!(first, Some(json!({"price": 600})));
    // A whole module.
    assert!(a.invalidate("quotes", None).await.unwrap() >= 1);
    assert_eq!(entry(h, "meta").await.status, EntryStatus::Empty);
}

pub(crate) async fn case_insensitive_keys_are_one_entry_and_bad_names_are_refused<H: Harness>(
    h: &H,
) {
    let up = Upstream::default();
    let cfg = ModuleConfig {
        case_insensitive: true,
        ..config()
    };
    let n = node(h, "a", cfg, &up).await;
    let upper = n.get("quotes", "NVDA").await.unwrap();
    let lower = n.get("quotes", "nvda").await.unwrap();
    assert_eq!((upper.key.as_str(), lower.key.as_str()), ("nvda", "nvda"));
    assert_eq!(lower.served, Served::L1);
    assert_eq!(up.calls(), 1, "one entry, fetched once");
    assert!(matches!(
        n.get("fx", "eur").await,
        Err(ModuleError::UnknownModule { known, .. }) if known == "quotes"
    ));
    assert!(matches!(
        n.get("quotes", "").await,
        Err(ModuleError::InvalidKey { .. })
    ));
    assert!(matches!(
        n.get("quotes", &"x".repeat(513)).await,
        Err(ModuleError::InvalidKey { .. })
    ));
    assert_eq!(up.calls(), 1, "a refused read calls nothing");
}

pub(crate) async fn not_found_is_remembered_for_the_negative_ttl<H: Harness>(h: &H) {
    let up = Upstream::default();
    up.then(Answer::NotFound);
    let cfg = ModuleConfig {
        negative_ttl: Duration::from_secs(5),
        ..config()
    };
    let n = node(h, "a", cfg, &up).await;
    let missing = n.get("quotes", "zzzz").await.unwrap();
    assert_eq!((missing.value, missing.fresh), (None, true));
    let again = n.get("quotes", "zzzz").await.unwrap();
    assert_eq!((again.value, again.served), (None, Served::L1));
    assert_eq!(up.calls(), 1);
    assert_eq!(n.stats("quotes").unwrap().negative_hits, 2);
    h.clock().advance(Duration::from_secs(6));
    let found = n.get("quotes", "zzzz").await.unwrap();
    assert_eq!(found.value, Some(json!({"key": "zzzz", "call": 2})));
}

/// A refresher that panics before it even returns its future: the read
/// fails saying so, the lock is released with the failure, and the key is
/// refreshed again after the backoff (no read is left joining a flight
/// that never lands).
pub(crate) async fn a_refresher_that_panics_before_its_future_is_caught_too<H: Harness>(h: &H) {
    struct Eager(Arc<AtomicUsize>);
    impl Refresher for Eager {
        fn refresh(&self, key: String) -> RefreshFuture {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                let id: u64 = key.parse().unwrap();
                return Box::pin(async move { Ok(Refreshed::Value(json!(id))) });
            }
            Box::pin(async move { Ok(Refreshed::Value(json!("second"))) })
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let n = capstan_modules::Modules::builder(h.connect_again().await)
        .clock(Arc::new(h.clock().clone()))
        .module("quotes", config(), Arc::new(Eager(calls.clone())))
        .start(tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    match n.get("quotes", "not-a-number").await {
        Err(ModuleError::Refresh { message, .. }) => {
            assert!(message.contains("panicked"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let e = entry(h, "not-a-number").await;
    assert_eq!((e.status, e.lock_owner), (EntryStatus::Error, None));
    h.clock().advance(Duration::from_secs(31));
    let got = n.get("quotes", "not-a-number").await.unwrap();
    assert_eq!(got.value, Some(json!("second")));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// "Not found" is kept for its negative_ttl even when refresh-ahead's
/// horizon is longer: no call per read.
pub(crate) async fn a_not_found_is_not_refreshed_ahead<H: Harness>(h: &H) {
    let up = Upstream::default();
    up.then(Answer::NotFound);
    let cfg = ModuleConfig {
        refresh_ahead: Some(Duration::from_secs(40)),
        negative_ttl: Duration::from_secs(30),
        ..config()
    };
    let n = node(h, "a", cfg, &up).await;
    for _ in 0..50 {
        assert_eq!(n.get("quotes", "nope").await.unwrap().value, None);
    }
    landed(&n).await;
    assert_eq!(up.calls(), 1);
}

/// On one node, a read after an acknowledged put or invalidation never
/// sees what came before it.
pub(crate) async fn a_read_after_a_put_or_an_invalidation_sees_it<H: Harness>(h: &H) {
    let up = Upstream::default();
    let n = node(h, "a", config(), &up).await;
    for round in 0..20 {
        n.put("quotes", "ko", json!({"round": round}))
            .await
            .unwrap();
        let got = n.get("quotes", "ko").await.unwrap();
        assert_eq!(got.value, Some(json!({"round": round})), "read after put");
        n.invalidate("quotes", Some("ko")).await.unwrap();
        let got = n.get("quotes", "ko").await.unwrap();
        assert_eq!(
            got.served,
            Served::Refreshed,
            "read after invalidate: {got:?}"
        );
        assert_ne!(got.value, Some(json!({"round": round})));
    }
    assert_eq!(up.calls(), 20);
}
