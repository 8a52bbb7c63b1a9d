//! What a backend can do, declared rather than sniffed: the runtime asks these
//! flags instead of testing `if postgres`.

use serde::Serialize;

/// What a backend offers beyond the common contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Wake-ups cross processes and hosts (PostgreSQL LISTEN/NOTIFY).
    pub listen_notify: bool,
    /// Claims from several connections skip each other's rows (`FOR UPDATE SKIP LOCKED`);
    /// without it claims are serialized by a single writer.
    pub skip_locked: bool,
    /// Name of the backend, for logs and `capstan bench`: `sqlite` or `postgres`.
    pub backend: &'static str,
}
