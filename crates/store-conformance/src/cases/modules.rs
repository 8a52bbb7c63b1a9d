//! The freshness cache's entries: one refresh lock per entry across any
//! number of takers, outcomes written only under the lock's version and
//! owner, the lock always released with the outcome, the last good value
//! kept through failures, puts and invalidations fencing a refresh in
//! flight.

use std::time::Duration;

use capstan_core::{Clock, Timestamp};
use capstan_store::ModuleStore;
use capstan_store::modules::{
    EntryStatus, FinishRefresh, InvalidateEntries, ListEntries, LockOutcome, LockRefresh,
    ModuleEntry, PutEntry, ReadEntry, RefreshOutcome,
};
use serde_json::{Value, json};

use super::fixture::now;
use crate::Harness;

const LEASE: Duration = Duration::from_secs(10);
const FRESH: Duration = Duration::from_secs(60);
const STALE: Duration = Duration::from_secs(600);

fn at<H: Harness>(h: &H, after: Duration) -> Timestamp {
    h.clock().now() + chrono::Duration::from_std(after).unwrap()
}

async fn lock<H: Harness>(
    h: &H,
    key: &str,
    owner: &str,
    unless_fresh: bool,
    force: bool,
) -> LockOutcome {
    h.store()
        .lock_refresh(&LockRefresh {
            module: "quotes".into(),
            key: key.into(),
            owner: owner.into(),
            lease: LEASE,
            fresh_enough: unless_fresh.then(|| h.clock().now()),
            force,
            now: now(h),
        })
        .await
        .unwrap()
}

async fn finish<H: Harness>(
    h: &H,
    key: &str,
    owner: &str,
    version: i64,
    outcome: RefreshOutcome,
) -> Option<ModuleEntry> {
    h.store()
        .finish_refresh(&FinishRefresh {
            module: "quotes".into(),
            key: key.into(),
            version,
            owner: owner.into(),
            outcome,
            took: Duration::from_millis(250),
            now: now(h),
        })
        .await
        .unwrap()
}

async fn read<H: Harness>(h: &H, key: &str) -> ModuleEntry {
    h.store()
        .read_entry(&ReadEntry {
            module: "quotes".into(),
            key: key.into(),
        })
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no entry {key}"))
}

fn ready(value: Value) -> RefreshOutcome {
    RefreshOutcome::Ready {
        value,
        fresh_for: FRESH,
        stale_for: STALE,
    }
}

pub async fn a_refresh_lock_is_taken_once_and_released_with_its_outcome<H: Harness>(h: &H) {
    assert!(
        h.store()
            .read_entry(&ReadEntry {
                module: "quotes".into(),
                key: "nvda".into(),
            })
            .await
            .unwrap()
            .is_none()
    );
    let first = lock(h, "nvda", "a", true, false).await;
    let v1 = first.acquired.expect("a cold key's lock is free");
    assert_eq!(first.entry.status, EntryStatus::Empty);
    assert_eq!(first.entry.lock_owner.as_deref(), Some("a"));
    assert_eq!(first.entry.lock_until, Some(at(h, LEASE)));
    let second = lock(h, "nvda", "b", true, true).await;
    assert_eq!(second.acquired, None, "held, even when forced");
    assert_eq!(
        second.entry.lock_owner.as_deref(),
        Some("a"),
        "the entry says by whom"
    );
    // Ready: the value, fresh then stale, and the lock released.
    let done = finish(h, "nvda", "a", v1, ready(json!({"price": 101.5})))
        .await
        .unwrap();
    assert_eq!(
        (
            done.status,
            &done.value,
            done.lock_owner.as_deref(),
            done.lock_until
        ),
        (
            EntryStatus::Ready,
            &Some(json!({"price": 101.5})),
            None,
            None
        )
    );
    assert_eq!(done.fetched_at, Some(h.clock().now()));
    assert_eq!(done.fresh_until, Some(at(h, FRESH)));
    assert_eq!(done.stale_until, Some(at(h, FRESH + STALE)));
    assert_eq!(done.refresh_ms, Some(250));
    assert!(done.is_fresh(h.clock().now()) && !done.is_locked(h.clock().now()));
    assert_eq!(read(h, "nvda").await, done, "read back as written");
    // Fresh: skip-if-fresh does not take it.
    let skipped = lock(h, "nvda", "b", true, false).await;
    assert_eq!(skipped.acquired, None);
    assert_eq!(skipped.entry.lock_owner, None);
    // Stale: taken, under a new version; a failure keeps the last good value.
    h.clock().advance(FRESH + Duration::from_secs(1));
    let v2 = lock(h, "nvda", "b", true, false)
        .await
        .acquired
        .expect("stale");
    assert!(v2 > v1);
    let failed = finish(
        h,
        "nvda",
        "b",
        v2,
        RefreshOutcome::Failed {
            message: "upstream 503".into(),
            retry_after: Duration::from_secs(30),
        },
    )
    .await
    .unwrap();
    assert_eq!(failed.status, EntryStatus::Error);
    assert_eq!(failed.error.as_deref(), Some("upstream 503"));
    assert_eq!(
        (
            &failed.value,
            failed.fresh_until,
            failed.stale_until,
            failed.fetched_at
        ),
        (
            &done.value,
            done.fresh_until,
            done.stale_until,
            done.fetched_at
        ),
        "stale-if-error: the last good value and its times stay"
    );
    assert_eq!(
        (failed.failures, failed.retry_at),
        (1, Some(at(h, Duration::from_secs(30))))
    );
    assert_eq!(failed.lock_owner, None, "a failure releases the lock too");
    // Backing off: not taken before retry_at, unless forced.
    assert_eq!(lock(h, "nvda", "c", true, false).await.acquired, None);
    let v3 = lock(h, "nvda", "c", true, true)
        .await
        .acquired
        .expect("forced");
    let failed = finish(
        h,
        "nvda",
        "c",
        v3,
        RefreshOutcome::Failed {
            message: "again".into(),
            retry_after: Duration::from_secs(60),
        },
    )
    .await
    .unwrap();
    assert_eq!(failed.failures, 2, "failures in a row are counted");
    h.clock().advance(Duration::from_secs(61));
    let v4 = lock(h, "nvda", "d", true, false)
        .await
        .acquired
        .expect("backoff over");
    // Missing: the negative verdict replaces the value, for its own time.
    let missing = finish(
        h,
        "nvda",
        "d",
        v4,
        RefreshOutcome::Missing {
            fresh_for: Duration::from_secs(5),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (
            missing.status,
            &missing.value,
            missing.failures,
            missing.error.as_deref(),
            missing.retry_at
        ),
        (EntryStatus::Missing, &None, 0, None, None)
    );
    assert_eq!(missing.fresh_until, Some(at(h, Duration::from_secs(5))));
    assert!(
        missing.is_fresh(h.clock().now()),
        "a negative verdict is cached too"
    );
}

pub async fn a_lock_whose_lease_ended_is_taken_over_and_the_late_write_is_fenced<H: Harness>(
    h: &H,
) {
    let va = lock(h, "amd", "a", true, false).await.acquired.unwrap();
    h.clock().advance(LEASE - Duration::from_secs(1));
    assert_eq!(
        lock(h, "amd", "b", true, false).await.acquired,
        None,
        "within the lease"
    );
    h.clock().advance(Duration::from_secs(1));
    let vb = lock(h, "amd", "b", true, false)
        .await
        .acquired
        .expect("the lease ended");
    assert!(vb > va);
    assert_eq!(
        finish(h, "amd", "a", va, ready(json!("late"))).await,
        None,
        "the refresher that outlived its lease is fenced"
    );
    let entry = read(h, "amd").await;
    assert_eq!(
        (entry.value, entry.lock_owner.as_deref()),
        (None, Some("b")),
        "nothing changed"
    );
    assert_eq!(
        finish(h, "amd", "a", vb, ready(json!("forged"))).await,
        None,
        "the version alone is not enough: the owner must match"
    );
    let done = finish(h, "amd", "b", vb, ready(json!("fresh")))
        .await
        .unwrap();
    assert_eq!(done.value, Some(json!("fresh")));
}

pub async fn puts_and_invalidations_fence_a_refresh_in_flight<H: Harness>(h: &H) {
    let store = h.store();
    let va = lock(h, "tsla", "a", true, false).await.acquired.unwrap();
    let put = store
        .put_entry(&PutEntry {
            module: "quotes".into(),
            key: "tsla".into(),
            value: json!({"price": 250}),
            fresh_for: FRESH,
            stale_for: STALE,
            now: now(h),
        })
        .await
        .unwrap();
    assert_eq!(
        (put.status, put.lock_owner.as_deref()),
        (EntryStatus::Ready, None)
    );
    assert!(put.version > va);
    assert_eq!(
        (put.fresh_until, put.stale_until),
        (Some(at(h, FRESH)), Some(at(h, FRESH + STALE)))
    );
    assert_eq!(
        finish(h, "tsla", "a", va, ready(json!("older"))).await,
        None,
        "a refresh begun before a put cannot overwrite it"
    );
    assert_eq!(read(h, "tsla").await.value, Some(json!({"price": 250})));
    let vb = lock(h, "tsla", "b", false, false)
        .await
        .acquired
        .expect("not asked to skip");
    let n = store
        .invalidate_entries(&InvalidateEntries {
            module: "quotes".into(),
            key: Some("tsla".into()),
            now: now(h),
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    let gone = read(h, "tsla").await;
    assert_eq!(
        (
            gone.status,
            &gone.value,
            gone.fresh_until,
            gone.lock_owner.as_deref()
        ),
        (EntryStatus::Empty, &None, None, None)
    );
    assert!(gone.version > vb);
    assert_eq!(finish(h, "tsla", "b", vb, ready(json!("x"))).await, None);
    // A whole module; other modules untouched.
    store
        .put_entry(&PutEntry {
            module: "fundamentals".into(),
            key: "tsla".into(),
            value: json!(1),
            fresh_for: FRESH,
            stale_for: STALE,
            now: now(h),
        })
        .await
        .unwrap();
    lock(h, "aapl", "c", true, false).await;
    let n = store
        .invalidate_entries(&InvalidateEntries {
            module: "quotes".into(),
            key: None,
            now: now(h),
        })
        .await
        .unwrap();
    assert_eq!(n, 2);
    let other = store
        .read_entry(&ReadEntry {
            module: "fundamentals".into(),
            key: "tsla".into(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.value, Some(json!(1)));
}

/// Takers racing for a cold key: exactly one gets the lock.
pub async fn concurrent_takers_of_a_cold_key_lock_it_exactly_once<H: Harness>(h: &H) {
    let takers = (0..16).map(|k| {
        let store = h.store().clone();
        let now = now(h);
        tokio::spawn(async move {
            store
                .lock_refresh(&LockRefresh {
                    module: "quotes".into(),
                    key: "cold".into(),
                    owner: format!("owner-{k}"),
                    lease: LEASE,
                    fresh_enough: now,
                    force: false,
                    now,
                })
                .await
                .unwrap()
        })
    });
    let outcomes = futures_join(takers).await;
    let winners: Vec<&LockOutcome> = outcomes.iter().filter(|o| o.acquired.is_some()).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let owner = winners[0].entry.lock_owner.clone();
    assert!(
        outcomes.iter().all(|o| o.entry.lock_owner == owner),
        "every loser sees the winner's lock"
    );
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

pub async fn entries_list_in_module_and_key_order_by_pages<H: Harness>(h: &H) {
    for (module, key) in [
        ("quotes", "b"),
        ("quotes", "a"),
        ("fundamentals", "z"),
        ("quotes", "c"),
    ] {
        h.store()
            .put_entry(&PutEntry {
                module: module.into(),
                key: key.into(),
                value: json!(key),
                fresh_for: FRESH,
                stale_for: STALE,
                now: now(h),
            })
            .await
            .unwrap();
    }
    let names = |entries: Vec<ModuleEntry>| -> Vec<String> {
        entries
            .into_iter()
            .map(|e| format!("{}/{}", e.module, e.key))
            .collect()
    };
    let all = h
        .store()
        .list_entries(&ListEntries {
            limit: 10,
            ..ListEntries::default()
        })
        .await
        .unwrap();
    assert_eq!(
        names(all),
        ["fundamentals/z", "quotes/a", "quotes/b", "quotes/c"]
    );
    let page = h
        .store()
        .list_entries(&ListEntries {
            module: Some("quotes".into()),
            after: None,
            limit: 2,
        })
        .await
        .unwrap();
    assert_eq!(names(page), ["quotes/a", "quotes/b"]);
    let next = h
        .store()
        .list_entries(&ListEntries {
            module: Some("quotes".into()),
            after: Some(("quotes".into(), "b".into())),
            limit: 2,
        })
        .await
        .unwrap();
    assert_eq!(names(next), ["quotes/c"]);
}

/// A refresh ahead of expiry takes the lock only once the entry's freshness
/// ends before the horizon it names; one that just ran moved it past.
pub async fn a_refresh_ahead_takes_the_lock_only_near_expiry<H: Harness>(h: &H) {
    let v = lock(h, "msft", "a", true, false).await.acquired.unwrap();
    finish(h, "msft", "a", v, ready(json!(1))).await.unwrap();
    let ahead = |by: u64| LockRefresh {
        module: "quotes".into(),
        key: "msft".into(),
        owner: format!("ahead-{by}"),
        lease: LEASE,
        fresh_enough: Some(at(h, Duration::from_secs(by))),
        force: false,
        now: now(h),
    };
    let early = h.store().lock_refresh(&ahead(30)).await.unwrap();
    assert_eq!(
        early.acquired, None,
        "fresh for 60 s: not within 30 s of expiry"
    );
    h.clock().advance(Duration::from_secs(40));
    let near = h.store().lock_refresh(&ahead(30)).await.unwrap();
    let v2 = near.acquired.expect("20 s of freshness left: within 30 s");
    finish(h, "msft", "ahead-30", v2, ready(json!(2)))
        .await
        .unwrap();
    let again = h.store().lock_refresh(&ahead(30)).await.unwrap();
    assert_eq!(
        again.acquired, None,
        "the refresh just ran: fresh past the next taker's horizon"
    );
    assert_eq!(again.entry.value, Some(json!(2)));
}
