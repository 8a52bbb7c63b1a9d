//! Built-in diagnostic kinds, registered by [`crate::Workers::new`]:
//!
//! - `capstan.noop`: completes at once; its result is its args.
//! - `capstan.sleep` `{"ms": N}`: sleeps N ms; honours cancellation and timeout.
//! - `capstan.fail` `{"message": "...", "permanent": false}`: fails with that
//!   message, as a retryable (default) or permanent error.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Handler, JobContext, JobError, Workers};

struct Noop;

impl Handler for Noop {
    const KIND: &'static str = "capstan.noop";
    type Args = Value;
    type Output = Value;

    async fn run(&self, _ctx: JobContext, args: Value) -> Result<Value, JobError> {
        Ok(args)
    }
}

/// Args of `capstan.sleep`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SleepArgs {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
}

struct Sleep;

impl Handler for Sleep {
    const KIND: &'static str = "capstan.sleep";
    type Args = SleepArgs;
    type Output = Value;

    async fn run(&self, ctx: JobContext, args: SleepArgs) -> Result<Value, JobError> {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(args.ms)) => {
                Ok(serde_json::json!({ "slept_ms": args.ms }))
            }
            () = ctx.cancelled() => Err(JobError::retryable("sleep interrupted by cancellation")),
        }
    }
}

/// Args of `capstan.fail`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailArgs {
    /// The error message.
    #[serde(default = "default_message")]
    pub message: String,
    /// Fail permanently (no retry) instead of retryably.
    #[serde(default)]
    pub permanent: bool,
}

fn default_message() -> String {
    "capstan.fail was asked to fail".to_owned()
}

struct Fail;

impl Handler for Fail {
    const KIND: &'static str = "capstan.fail";
    type Args = FailArgs;
    type Output = ();

    async fn run(&self, _ctx: JobContext, args: FailArgs) -> Result<(), JobError> {
        Err(if args.permanent {
            JobError::permanent(args.message)
        } else {
            JobError::retryable(args.message)
        })
    }
}

pub(crate) fn register(w: &mut Workers) {
    // The registry is empty here, so none of these can clash.
    let _ = w.register(Noop);
    let _ = w.register(Sleep);
    let _ = w.register(Fail);
}

#[cfg(test)]
mod tests {
    use super::FailArgs;
    use serde_json::json;

    #[test]
    fn capstan_fail_says_why_when_given_no_message() {
        let args: FailArgs = serde_json::from_value(json!({})).unwrap();
        assert_eq!(args.message, "capstan.fail was asked to fail");
        assert!(!args.permanent, "retryable unless asked");
        let args: FailArgs =
            serde_json::from_value(json!({"message": "boom", "permanent": true})).unwrap();
        assert_eq!((args.message.as_str(), args.permanent), ("boom", true));
    }
}
