//! A fake upstream that counts its calls and answers as scripted, and
//! nodes (each a `Modules` on a store of its own) over the harness's
//! database and clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_modules::{ModuleConfig, Modules, Refreshed, Refresher, refresher_fn};
use capstan_store::ModuleStore;
use capstan_store_conformance::Harness;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// What the upstream does at a call.
#[derive(Debug)]
pub(crate) enum Answer {
    /// This value.
    Value(Value),
    /// "Not found".
    NotFound,
    /// An error.
    Fail(&'static str),
    /// A panic.
    Panic,
    /// Never answers.
    Hang,
    /// This value after a wait.
    Slow(Duration, Value),
    /// Whatever the gate is opened with.
    Gate(oneshot::Receiver<Value>),
}

/// The upstream: scripted answers first, then `{"key": k, "call": n}`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Upstream {
    calls: Arc<AtomicUsize>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Upstream {
    pub(crate) fn then(&self, a: Answer) -> &Self {
        self.script.lock().unwrap().push_back(a);
        self
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn refresher(&self) -> Arc<dyn Refresher> {
        let me = self.clone();
        refresher_fn(move |key| {
            let me = me.clone();
            async move {
                let n = me.calls.fetch_add(1, Ordering::SeqCst) + 1;
                let answer = me.script.lock().unwrap().pop_front();
                match answer {
                    None => Ok(Refreshed::Value(json!({"key": key, "call": n}))),
                    Some(Answer::Value(v)) => Ok(Refreshed::Value(v)),
                    Some(Answer::NotFound) => Ok(Refreshed::NotFound),
                    Some(Answer::Fail(m)) => Err(m.into()),
                    Some(Answer::Panic) => panic!("the upstream blew up"),
                    Some(Answer::Hang) => std::future::pending().await,
                    Some(Answer::Slow(d, v)) => {
                        tokio::time::sleep(d).await;
                        Ok(Refreshed::Value(v))
                    }
                    Some(Answer::Gate(rx)) => Ok(Refreshed::Value(rx.await.unwrap_or(Value::Null))),
                }
            }
        })
    }
}

/// A node: `Modules` with one module, "quotes", on a store of its own.
pub(crate) async fn node<H: Harness>(
    h: &H,
    name: &str,
    config: ModuleConfig,
    upstream: &Upstream,
) -> Modules<H::Store> {
    let store = h.connect_again().await;
    Modules::builder(store)
        .clock(Arc::new(h.clock().clone()))
        .node(name)
        .module("quotes", config, upstream.refresher())
        .start(CancellationToken::new())
        .await
        .unwrap()
}

/// Wait (at most 10 s) until `done` holds.
pub(crate) async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: never happened");
}

/// Wait (at most 10 s) until `look` finds something.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut look: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..1000 {
        if let Some(found) = look().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: never happened");
}

/// Wait until `node` has no refresh of "quotes" in flight (so a test that
/// moves the clock next does not race a flight begun at the old time).
pub(crate) async fn landed<S: capstan_store::Store>(node: &Modules<S>) {
    for _ in 0..1000 {
        if node.stats("quotes").unwrap().in_flight == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("a refresh stayed in flight");
}

/// The entry as the database has it.
pub(crate) async fn entry<H: Harness>(h: &H, key: &str) -> capstan_modules::ModuleEntry {
    h.store()
        .read_entry(&capstan_store::modules::ReadEntry {
            module: "quotes".into(),
            key: key.into(),
        })
        .await
        .unwrap()
        .unwrap()
}
