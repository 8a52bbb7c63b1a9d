-- Capstan 0006: the freshness cache's entries (see the store's `modules`
-- module): one row per (module, key) with the last good value, its
-- freshness, the last refresh's outcome and the refresh lock. `version` is
-- the fencing token: every lock, put and invalidation bumps it, and a
-- refresh's result is written only under the version it locked with.
CREATE TABLE capstan.module_entries (
    module      text        NOT NULL,
    key         text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('empty', 'ready', 'missing', 'error')),
    value       jsonb,
    fetched_at  timestamptz,
    fresh_until timestamptz,
    stale_until timestamptz,
    error       text,
    failures    integer     NOT NULL DEFAULT 0,
    retry_at    timestamptz,
    refresh_ms  bigint,
    version     bigint      NOT NULL,
    lock_owner  text,
    lock_until  timestamptz,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (module, key)
);
