-- Parameters: $1 module, $2 key, $3 version, $4 owner, $5 outcome
--   ('ready' | 'missing' | 'error'), $6 value, $7 fresh (ms), $8 stale (ms),
--   $9 error, $10 retry after (ms), $11 took (ms), $12 now (NULL = the
--   database's clock).
-- Fenced: only under the version and owner of the lock. Releases the lock
-- in the same statement. A failure keeps the last good value and its
-- freshness times (stale-if-error) and sets the backoff.
UPDATE capstan.module_entries AS e
SET status = $5,
    value = CASE $5 WHEN 'ready' THEN $6 WHEN 'missing' THEN NULL ELSE e.value END,
    fetched_at = CASE WHEN $5 = 'error' THEN e.fetched_at ELSE t.now END,
    fresh_until = CASE WHEN $5 = 'error' THEN e.fresh_until
                       ELSE t.now + make_interval(secs => $7 / 1000.0) END,
    stale_until = CASE WHEN $5 = 'error' THEN e.stale_until
                       ELSE t.now + make_interval(secs => ($7 + $8) / 1000.0) END,
    error = CASE WHEN $5 = 'error' THEN $9 END,
    failures = CASE WHEN $5 = 'error' THEN e.failures + 1 ELSE 0 END,
    retry_at = CASE WHEN $5 = 'error' THEN t.now + make_interval(secs => $10 / 1000.0) END,
    refresh_ms = $11,
    lock_owner = NULL,
    lock_until = NULL,
    updated_at = t.now
FROM (SELECT coalesce($12::timestamptz, now()) AS now) t
WHERE e.module = $1 AND e.key = $2 AND e.version = $3 AND e.lock_owner = $4
RETURNING e.*
