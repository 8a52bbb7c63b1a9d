//! Maintenance: migrations, promotion, retention, wake-ups.

use std::time::Duration;

use capstan_core::{Clock, JobState};
use capstan_store::{DeleteFinished, JobStore, PromoteDue, QueueStore, Store, Wakeup};

use super::{claim, complete, enqueue, enqueue_one, finish, get, job, node, now, register};
use crate::Harness;

pub async fn migrate_twice_is_a_no_op<H: Harness>(h: &H) {
    let id = enqueue_one(h, job("k")).await;
    h.store().migrate().await.expect("second migrate");
    h.connect_again()
        .await
        .migrate()
        .await
        .expect("migrate from another connection");
    assert_eq!(get(h, id).await.state, JobState::Available, "data kept");
}

pub async fn promote_reports_the_next_due_time<H: Harness>(h: &H) {
    let t0 = h.clock().now();
    enqueue(
        h,
        vec![
            job("k").with_delay(Duration::from_secs(5)),
            job("k").with_delay(Duration::from_secs(60)),
            job("k").with_queue("q2").with_delay(Duration::from_secs(5)),
        ],
    )
    .await;
    let p = |h: &H| PromoteDue {
        limit: 100,
        now: now(h),
    };
    let r = h.store().promote_due(&p(h)).await.unwrap();
    assert_eq!(r.promoted, 0);
    assert_eq!(r.next_due, Some(t0 + chrono::Duration::seconds(5)));
    h.clock().advance(Duration::from_secs(5));
    let mut r = h.store().promote_due(&p(h)).await.unwrap();
    r.queues.sort();
    assert_eq!(r.promoted, 2);
    assert_eq!(r.queues, vec!["default".to_owned(), "q2".to_owned()]);
    assert_eq!(r.next_due, Some(t0 + chrono::Duration::seconds(60)));
}

pub async fn cleaner_deletes_only_jobs_past_retention_in_batches<H: Harness>(h: &H) {
    let n = node("n1");
    register(h, &n).await;
    enqueue(h, (0..5).map(|_| job("k")).collect()).await;
    let done = claim(h, "default", 5, &n).await;
    finish(h, &n, done.iter().map(complete).collect()).await;
    let failed = enqueue_one(h, job("k")).await;
    h.store()
        .cancel_job(&capstan_store::CancelJob {
            id: failed,
            now: now(h),
        })
        .await
        .unwrap();
    let waiting = enqueue_one(h, job("k")).await;
    h.clock().advance(Duration::from_secs(3600));
    let recent = enqueue_one(h, job("k")).await;
    let recent_job = claim(h, "default", 10, &n).await;
    finish(h, &n, recent_job.iter().map(complete).collect()).await;
    // Completed older than 30 min go; failed/cancelled are kept for 7 days.
    let p = DeleteFinished {
        completed_before: h.clock().now() - chrono::Duration::minutes(30),
        failed_before: h.clock().now() - chrono::Duration::days(7),
        limit: 2,
    };
    let mut total = 0;
    loop {
        let n = h.store().delete_finished(&p).await.unwrap();
        assert!(n <= 2 * 3, "bounded batch per state");
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 5);
    assert_eq!(get(h, failed).await.state, JobState::Cancelled);
    assert_eq!(get(h, waiting).await.state, JobState::Completed);
    assert_eq!(get(h, recent).await.state, JobState::Completed);
    let counts = h.store().queue_counts().await.unwrap();
    assert_eq!((counts[0].completed, counts[0].cancelled), (2, 1));
}

async fn next_wakeup(w: &mut capstan_store::Wakeups) -> Option<Wakeup> {
    tokio::time::timeout(Duration::from_secs(10), w.recv())
        .await
        .ok()
        .flatten()
}

pub async fn enqueue_wakes_subscribers<H: Harness>(h: &H) {
    let mut w = h.store().subscribe().await.unwrap();
    enqueue_one(h, job("k").with_queue("mail")).await;
    let got = next_wakeup(&mut w).await;
    assert!(
        matches!(&got, Some(Wakeup::Queue(q)) if q == "mail") || got == Some(Wakeup::All),
        "{got:?}"
    );
}

pub async fn enqueue_from_another_connection_wakes_subscribers<H: Harness>(h: &H) {
    let mut w = h.store().subscribe().await.unwrap();
    let other = h.connect_again().await;
    other
        .insert_many(&capstan_store::InsertMany {
            jobs: vec![job("k").with_queue("mail")],
            default_max_attempts: 3,
            now: now(h),
        })
        .await
        .unwrap();
    let got = next_wakeup(&mut w).await;
    assert!(
        matches!(&got, Some(Wakeup::Queue(q)) if q == "mail") || got == Some(Wakeup::All),
        "another process's enqueue reaches this one: {got:?}"
    );
}
