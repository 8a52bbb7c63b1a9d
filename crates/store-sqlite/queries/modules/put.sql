-- Parameters: ?1 module, ?2 key, ?3 value (JSON text), ?4 fresh (ms),
--   ?5 stale (ms), ?6 now (µs).
-- Write-through: fresh at once, a new version (an in-flight refresh is
-- fenced), the lock and any backoff cleared.
INSERT INTO capstan_module_entries AS e (module, key, status, value, fetched_at, fresh_until,
                                         stale_until, version, updated_at)
SELECT ?1, ?2, 'ready', ?3, ?6, ?6 + ?4 * 1000, ?6 + (?4 + ?5) * 1000, 1, ?6 WHERE true
ON CONFLICT (module, key) DO UPDATE
SET status = 'ready', value = excluded.value, fetched_at = excluded.fetched_at,
    fresh_until = excluded.fresh_until, stale_until = excluded.stale_until,
    error = NULL, failures = 0, retry_at = NULL, version = e.version + 1,
    lock_owner = NULL, lock_until = NULL, updated_at = excluded.updated_at
RETURNING *
