//! The parker: sets aside available jobs that no live node can run — a kind
//! nobody has a handler for in that queue (a typo, an enqueuer deployed before
//! its workers, a worker removed). They leave the claim order, so they never
//! make a claim slower however many pile up, and wait as `unhandled` (shown
//! by `capstan queues` and `jobs list`) until a node with a handler for their
//! kind registers or beats, which puts them back.
//!
//! It looks only at the head of each queue's claim order: jobs deeper in the
//! queue cost a claim nothing until they reach the head. It judges liveness
//! as the rescuer does, from its node's own health: right after an outage,
//! when every node's row has expired, every node still counts as live, and
//! nothing is set aside.

use std::sync::Arc;
use std::time::Duration;

use capstan_core::Timestamp;
use capstan_store::{MarkUnhandled, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::Client;
use crate::node::Shared;

/// Jobs looked at per statement (the head of the claim order).
const PARK_BATCH: u32 = 100;

pub(crate) async fn run<S: Store>(shared: Arc<Shared<S>>, stop: CancellationToken) {
    let client = &shared.client;
    let mut tick = tokio::time::interval(client.config.rescue_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        // Until this node knows its own health, it judges nobody.
        let Some(since) = *shared
            .healthy_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        else {
            continue;
        };
        match run_once(client, since, &stop).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                jobs = n,
                "set aside jobs that no live node has a handler for; they wait for one (see `capstan queues`)"
            ),
            Err(e) => tracing::warn!(error = %e, "setting aside unhandled jobs failed"),
        }
    }
}

/// Set aside the unhandled jobs at the head of every queue this client's
/// configuration serves, judging liveness from `healthy_since`; returns how
/// many.
pub(crate) async fn run_once<S: Store>(
    client: &Client<S>,
    healthy_since: Timestamp,
    stop: &CancellationToken,
) -> Result<u64, StoreError> {
    let mut total = 0;
    for q in &client.config.queues {
        while !stop.is_cancelled() {
            let p = MarkUnhandled {
                queue: q.name.clone(),
                limit: PARK_BATCH,
                healthy_since,
                now: client.clock.pinned(),
            };
            let n = super::bounded("mark_unhandled", client.store.mark_unhandled(&p)).await?;
            total += n;
            // Some were set aside: the next jobs are at the head now.
            if n == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(total)
}
