-- Parameters: $1 module, $2 key (NULL = every key of the module), $3 now
--   (NULL = the database's clock).
-- Forget the value and any backoff; a new version fences an in-flight
-- refresh, whose lock is released.
UPDATE capstan.module_entries
SET status = 'empty', value = NULL, fetched_at = NULL, fresh_until = NULL, stale_until = NULL,
    error = NULL, failures = 0, retry_at = NULL, version = version + 1,
    lock_owner = NULL, lock_until = NULL, updated_at = coalesce($3::timestamptz, now())
WHERE module = $1 AND ($2::text IS NULL OR key = $2)
