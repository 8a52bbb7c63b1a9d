//! The one error type of the storage seam. Each variant says what failed, on
//! what, and what to do.

use std::time::Duration;

use capstan_core::{JobId, JobState, Lease, NodeId, Timestamp, ValidationError};
use thiserror::Error;

/// What a store operation can fail with. New variants may come (match with
/// a wildcard arm); [`StoreError::is_transient`] says whether waiting helps.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The caller no longer holds the job: its lease was lost and the job was
    /// rescued (or finished) and possibly handed to another worker.
    #[error(
        "job {} is no longer held under lease {} (its lease was lost and it was rescued or finished elsewhere): stop working on it",
        lease.job_id, lease.token
    )]
    Fenced {
        /// The lease the caller acted under.
        lease: Lease,
    },
    /// No job has this id (it never existed or the cleaner deleted it).
    #[error("job {job_id} not found (it never existed or was deleted after its retention period)")]
    NotFound {
        /// The id asked for.
        job_id: JobId,
    },
    /// The job's state does not allow the action.
    #[error("cannot {action} job {job_id}: it is {state}")]
    InvalidTransition {
        /// The job.
        job_id: JobId,
        /// Its current state.
        state: JobState,
        /// What was asked: `cancel`, `retry`, ….
        action: &'static str,
    },
    /// Input that the store refuses before writing anything.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The database URL or connection options are not usable.
    #[error("cannot open the database {url}: {message}")]
    Connect {
        /// The URL, with any password removed.
        url: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// Applying the schema migrations failed.
    #[error("migrating the {backend} database failed: {source}")]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another live process uses this node id.
    #[error(
        "node id {node} is in use by another live process (it last beat at {heartbeat_at}, every {interval:?}): give each process its own --node-id, or stop the other one"
    )]
    NodeIdInUse {
        /// The node id.
        node: NodeId,
        /// The other process's last heartbeat.
        heartbeat_at: Timestamp,
        /// How often the other process beats.
        interval: Duration,
        /// The other process's beat count (see [`crate::RegisterNode::takeover`]).
        beats: u64,
        /// The other process's incarnation.
        incarnation: String,
    },
    /// The database could not be reached, or was too busy to answer: nothing
    /// was decided, and trying again later is the remedy (the runtime does).
    #[error("the database is unavailable during {operation}: {source} (retrying may help)")]
    Unavailable {
        /// The store operation, e.g. `claim` or `finish_many`.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database refused the data of the operation itself (a value out
    /// of range, text it cannot store, a payload past its limits): the same
    /// call will be refused again.
    #[error("the database refused the data of {operation}: {source}")]
    Refused {
        /// The store operation, e.g. `finish_many`.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database has no Capstan schema, or an older one than this
    /// version needs; nothing was changed.
    #[error(
        "the {backend} database {}: apply Capstan's migrations first (`capstan migrate`, or `Store::migrate` from code; `capstan serve` migrates by itself)",
        if *applied == 0 { "has no Capstan schema yet".to_owned() } else { format!("has Capstan schema version {applied}, and this version of Capstan needs {needed}") }
    )]
    SchemaOutdated {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The newest migration applied (0: none).
        applied: i64,
        /// The newest migration this version has.
        needed: i64,
    },
    /// The database refused or failed an operation.
    #[error("database error during {operation}: {source}")]
    Database {
        /// The store operation, e.g. `claim` or `insert_many`.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Rows kept changing hands under the operation (an idempotency or
    /// dedupe key whose holder vanished and came back, again and again):
    /// nothing was written, and trying again is the remedy.
    #[error(
        "{operation} gave up: {what} kept changing hands under it; nothing was written, try again"
    )]
    Contention {
        /// The store operation.
        operation: &'static str,
        /// What kept changing.
        what: &'static str,
    },
    /// A batch could not be encoded as JSON for its statement (a bug: the
    /// batch types always encode); nothing was written.
    #[error(
        "cannot encode the {operation} batch as JSON: {source} (nothing was written; please report this bug)"
    )]
    Encode {
        /// The store operation.
        operation: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A value read back from the database could not be decoded.
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        /// The table read.
        table: &'static str,
        /// What could not be decoded.
        message: String,
    },
}

/// The first schema version whose nodes cannot share a database with nodes
/// of the versions before it (0002: lease tokens, node expiry and health).
pub const NODE_PROTOCOL_VERSION: i64 = 2;

impl StoreError {
    /// Refuse to migrate past [`NODE_PROTOCOL_VERSION`] while `live` nodes
    /// of an older version still beat: their claims and heartbeats would
    /// fail, and the new nodes would rescue their running jobs.
    pub fn live_older_nodes(backend: &'static str, live: i64) -> Self {
        StoreError::Migrate {
            backend,
            source: format!(
                "{live} node(s) of an earlier Capstan version beat within the last minute: stop every node, then migrate (schema version {NODE_PROTOCOL_VERSION} changes how nodes claim and beat), then start the new version"
            )
            .into(),
        }
    }

    /// Compare the newest migration `applied` to a database with the newest
    /// of this version's `migrations`: [`StoreError::SchemaOutdated`] when
    /// behind (what every backend's `check_schema` answers).
    ///
    /// # Errors
    /// `SchemaOutdated` when `applied` is older than the newest migration.
    pub fn check_schema_version(
        backend: &'static str,
        applied: i64,
        migrations: impl IntoIterator<Item = i64>,
    ) -> StoreResult<()> {
        let needed = migrations.into_iter().max().unwrap_or(0);
        if applied < needed {
            return Err(StoreError::SchemaOutdated {
                backend,
                applied,
                needed,
            });
        }
        Ok(())
    }

    /// True for errors that may go away by themselves (the database was
    /// unreachable or busy); false when it refused the operation itself.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::Contention { .. }
        )
    }

    /// Wrap a driver error raised by `operation`.
    pub fn database(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Database {
            operation,
            source: Box::new(source),
        }
    }
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;
