//! Identifiers: a job's id and a node's id, as newtypes so they cannot be mixed
//! up with counts or other strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a job: assigned by the database at enqueue, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of a running Capstan node (one process). A node holds the jobs it
/// claims; fencing checks the holder's node id together with the attempt.
///
/// Two live processes must never share a node id: a node that starts takes back
/// every job still recorded as held under its id (they belong to a previous
/// incarnation that died).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl NodeId {
    /// A fresh, unique node id: `prefix-<12 hex chars>`.
    pub fn generate(prefix: &str) -> Self {
        let n: u64 = rand::random();
        NodeId(format!("{prefix}-{:012x}", n & 0xffff_ffff_ffff))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        NodeId(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_node_ids_carry_their_prefix_and_differ() {
        let a = NodeId::generate("web");
        let b = NodeId::generate("web");
        assert_ne!(a, b);
        let (prefix, hex) = a.as_str().split_once('-').unwrap();
        assert_eq!(prefix, "web");
        assert_eq!(hex.len(), 12);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.to_string(), a.as_str());
    }
}
