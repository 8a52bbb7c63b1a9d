-- Capstan 0004: the freshness cache's entries (see the store's `modules`
-- module): one row per (module, key) with the last good value (JSON text),
-- its freshness, the last refresh's outcome and the refresh lock. Times in
-- microseconds since the epoch, as everywhere in this schema. `version` is
-- the fencing token: every lock, put and invalidation bumps it, and a
-- refresh's result is written only under the version it locked with.
CREATE TABLE capstan_module_entries (
    module      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('empty', 'ready', 'missing', 'error')),
    value       TEXT,
    fetched_at  INTEGER,
    fresh_until INTEGER,
    stale_until INTEGER,
    error       TEXT,
    failures    INTEGER NOT NULL DEFAULT 0,
    retry_at    INTEGER,
    refresh_ms  INTEGER,
    version     INTEGER NOT NULL,
    lock_owner  TEXT,
    lock_until  INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (module, key)
) WITHOUT ROWID;
