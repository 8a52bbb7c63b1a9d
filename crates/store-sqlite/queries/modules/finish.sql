-- Parameters: ?1 module, ?2 key, ?3 version, ?4 owner, ?5 outcome
--   ('ready' | 'missing' | 'error'), ?6 value (JSON text), ?7 fresh (ms),
--   ?8 stale (ms), ?9 error, ?10 retry after (ms), ?11 took (ms), ?12 now (µs).
-- Fenced: only under the version and owner of the lock. Releases the lock
-- in the same statement. A failure keeps the last good value and its
-- freshness times (stale-if-error) and sets the backoff.
UPDATE capstan_module_entries
SET status = ?5,
    value = CASE ?5 WHEN 'ready' THEN ?6 WHEN 'missing' THEN NULL ELSE value END,
    fetched_at = CASE WHEN ?5 = 'error' THEN fetched_at ELSE ?12 END,
    fresh_until = CASE WHEN ?5 = 'error' THEN fresh_until ELSE ?12 + ?7 * 1000 END,
    stale_until = CASE WHEN ?5 = 'error' THEN stale_until ELSE ?12 + (?7 + ?8) * 1000 END,
    error = CASE WHEN ?5 = 'error' THEN ?9 END,
    failures = CASE WHEN ?5 = 'error' THEN failures + 1 ELSE 0 END,
    retry_at = CASE WHEN ?5 = 'error' THEN ?12 + ?10 * 1000 END,
    refresh_ms = ?11,
    lock_owner = NULL,
    lock_until = NULL,
    updated_at = ?12
WHERE module = ?1 AND key = ?2 AND version = ?3 AND lock_owner = ?4
RETURNING *
