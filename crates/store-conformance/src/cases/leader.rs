//! Leadership of the maintenance services: one leader per term, re-elected
//! while it bids, replaced once its term ends or it resigns.

use std::time::Duration;

use capstan_core::Clock;
use capstan_store::LeaderStore;
use capstan_store::leader::{ElectLeader, ResignLeader};

use super::fixture::node;
use crate::Harness;

const TERM: Duration = Duration::from_secs(25);

async fn bid<H: Harness>(h: &H, name: &str, incarnation: &str) -> bool {
    h.store()
        .elect_leader(&ElectLeader {
            node: node(name),
            incarnation: incarnation.into(),
            term: TERM,
            now: h.clock().pinned(),
        })
        .await
        .unwrap()
}

async fn resign<H: Harness>(h: &H, name: &str, incarnation: &str) {
    h.store()
        .resign_leader(&ResignLeader {
            node: node(name),
            incarnation: incarnation.into(),
        })
        .await
        .unwrap();
}

pub async fn one_leader_per_term_and_the_next_once_it_ends<H: Harness>(h: &H) {
    assert!(bid(h, "a", "1").await, "nobody leads: the first bid wins");
    assert!(!bid(h, "b", "1").await, "a's term runs");
    h.clock().advance(TERM - Duration::from_secs(1));
    assert!(bid(h, "a", "1").await, "the leader's bid extends its term");
    h.clock().advance(Duration::from_secs(2));
    assert!(
        !bid(h, "b", "1").await,
        "the extended term still runs past the first one's end"
    );
    assert!(
        !bid(h, "a", "2").await,
        "a restarted process under the same id waits for the old term too"
    );
    h.clock().advance(TERM);
    assert!(
        bid(h, "b", "1").await,
        "a's term ended without a bid: b wins"
    );
    assert!(!bid(h, "a", "1").await, "and now a waits for b");
}

pub async fn a_resigned_term_is_won_at_the_next_bid<H: Harness>(h: &H) {
    assert!(bid(h, "a", "1").await);
    resign(h, "b", "1").await;
    resign(h, "a", "2").await;
    assert!(
        !bid(h, "b", "1").await,
        "a resignation by another node or incarnation changes nothing"
    );
    resign(h, "a", "1").await;
    assert!(bid(h, "b", "1").await, "a resigned: b wins at once");
    assert!(!bid(h, "a", "1").await);
}

/// Bidders racing for an empty term: exactly one wins.
pub async fn concurrent_bidders_elect_exactly_one<H: Harness>(h: &H) {
    let bids = (0..8).map(|k| {
        let store = h.store().clone();
        let now = h.clock().pinned();
        tokio::spawn(async move {
            store
                .elect_leader(&ElectLeader {
                    node: node(&format!("n{k}")),
                    incarnation: "1".into(),
                    term: TERM,
                    now,
                })
                .await
                .unwrap()
        })
    });
    let mut won = 0;
    for b in bids {
        won += usize::from(b.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one of 8 concurrent bids wins");
}
