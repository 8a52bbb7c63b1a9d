//! One table from an HTTP status to what becomes of a job, shared by push
//! queues (the target's reply) and pull workers (the status a worker's own
//! call got, passed to `fail` as `status`), so the two cannot disagree:
//!
//! | status | verdict |
//! |---|---|
//! | 2xx | [`Verdict::Complete`] |
//! | 429, 502, 503, 504 | [`Verdict::RetryLater`]: after `Retry-After` when one is given, else the backoff |
//! | other 5xx, 3xx, 1xx | [`Verdict::Retry`]: the backoff |
//! | 410 | [`Verdict::Gone`]: the target is gone (a push queue disables it; a pull worker's job fails) |
//! | other 4xx | [`Verdict::Fail`]: failed for good |

/// What a status means for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Done: complete the job.
    Complete,
    /// The other side is busy or down for now: retry, after its
    /// `Retry-After` when it gave one.
    RetryLater,
    /// Retry with the job's backoff.
    Retry,
    /// The target no longer exists.
    Gone,
    /// A request that cannot succeed as it is: fail for good.
    Fail,
}

impl Verdict {
    /// The verdict on `status`.
    #[must_use]
    pub fn of(status: u16) -> Verdict {
        match status {
            200..=299 => Verdict::Complete,
            429 | 502 | 503 | 504 => Verdict::RetryLater,
            410 => Verdict::Gone,
            400..=499 => Verdict::Fail,
            _ => Verdict::Retry,
        }
    }

    /// Whether the job is retried (while attempts are left).
    #[must_use]
    pub fn retries(self) -> bool {
        matches!(self, Verdict::RetryLater | Verdict::Retry)
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::{self, *};

    #[test]
    fn each_status_class_has_its_verdict() {
        let cases = [
            (200, Complete),
            (204, Complete),
            (299, Complete),
            (429, RetryLater),
            (502, RetryLater),
            (503, RetryLater),
            (504, RetryLater),
            (500, Retry),
            (501, Retry),
            (599, Retry),
            (301, Retry),
            (100, Retry),
            (410, Gone),
            (400, Fail),
            (401, Fail),
            (404, Fail),
            (422, Fail),
            (499, Fail),
        ];
        for (status, verdict) in cases {
            assert_eq!(Verdict::of(status), verdict, "{status}");
        }
        assert!(RetryLater.retries() && Retry.retries());
        assert!(!Complete.retries() && !Gone.retries() && !Fail.retries());
    }
}
