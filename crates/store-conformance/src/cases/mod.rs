//! The cases, grouped by area — the same areas as the seam's modules, the
//! backends' modules and their query files (`jobs`: enqueue, claim, finish,
//! rescue, maintenance, admin; `nodes`; `queues`; `leader`; `modules`), plus the seam-wide `tx`
//! and `notify`. Shared set-up lives in `fixture`. Each is `pub async fn case<H: Harness>(h: &H)`
//! and panics (assert) on a behaviour a user relies on being broken. The
//! case names are sentences and serve as their documentation.
#![allow(missing_docs)]

pub mod admin;
pub mod claim;
pub mod enqueue;
pub mod finish;
pub mod leader;
pub mod maintenance;
pub mod modules;
pub mod nodes;
pub mod notify;
pub mod queues;
pub mod rescue;
pub mod tx;

mod fixture;
