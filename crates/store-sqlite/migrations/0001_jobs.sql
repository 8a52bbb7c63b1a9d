-- Capstan schema for SQLite. Every table is prefixed `capstan_`.
-- Times are integer microseconds since the Unix epoch (UTC); JSON is text.

CREATE TABLE capstan_jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids are never reused
    queue            TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    args             TEXT    NOT NULL DEFAULT '{}',
    priority         INTEGER NOT NULL DEFAULT 0,
    state            TEXT    NOT NULL CHECK (state IN
                     ('scheduled', 'available', 'running', 'retryable', 'completed', 'failed', 'cancelled')),
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at           INTEGER NOT NULL,
    timeout_ms       INTEGER,
    errors           TEXT    NOT NULL DEFAULT '[]',
    result           TEXT,
    progress         TEXT,
    tags             TEXT    NOT NULL DEFAULT '[]',
    idempotency_key  TEXT,
    dedupe_key       TEXT,
    -- 1 while the job holds its dedupe key: from enqueue until its first claim
    -- (or cancel). Cleared, never set again, so no later transition can collide.
    dedupe_open      INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    attempted_at     INTEGER,
    finished_at      INTEGER,
    node_id          TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);

-- The claim walks this index in order; it holds only available jobs, so its
-- size does not grow with retained history.
CREATE INDEX capstan_jobs_claim ON capstan_jobs (queue, priority DESC, run_at, id)
    WHERE state = 'available';
-- Scheduled and retryable jobs by due time (promotion).
CREATE INDEX capstan_jobs_due ON capstan_jobs (run_at) WHERE state IN ('scheduled', 'retryable');
-- Running jobs by holder (rescue, cancel requests).
CREATE INDEX capstan_jobs_running ON capstan_jobs (node_id) WHERE state = 'running';
-- Finished jobs by age (retention).
CREATE INDEX capstan_jobs_finished ON capstan_jobs (state, finished_at)
    WHERE state IN ('completed', 'failed', 'cancelled');
CREATE UNIQUE INDEX capstan_jobs_idempotency ON capstan_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX capstan_jobs_dedupe ON capstan_jobs (dedupe_key) WHERE dedupe_open = 1;

CREATE TABLE capstan_nodes (
    id           TEXT    PRIMARY KEY,
    queues       TEXT    NOT NULL DEFAULT '[]',
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
