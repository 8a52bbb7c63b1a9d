//! One params struct per store operation, and the report it returns. Every
//! struct that depends on time carries `now: Option<Timestamp>` (`None` = the
//! database's clock) so tests can pin it.

mod admin;
mod claim;
mod finish;
mod insert;
mod maintenance;
mod node;

pub use admin::{CancelJob, CancelOutcome, ListJobs, QueueCounts, RetryJob};
pub use claim::Claim;
pub use finish::{ErrorRecord, ExtendLeases, Extension, Finish, FinishMany, LeaseReport, Outcome};
pub use insert::{InsertMany, Inserted};
pub use maintenance::{
    DeleteFinished, MarkUnhandled, PromoteDue, PromoteReport, Rescue, RescueReport,
};
pub use node::{
    DeregisterNode, HeartbeatNode, Held, NodeBeat, NodeInfo, RegisterNode, RegisterReport,
};
