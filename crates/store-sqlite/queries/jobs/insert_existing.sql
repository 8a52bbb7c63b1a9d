-- Parameters: ?1 idempotency key, ?2 dedupe key.
-- The job that holds the idempotency key wins over one that holds only the
-- dedupe key: the caller's idempotency key must map to its own job.
SELECT id, state FROM capstan_jobs
WHERE (?1 IS NOT NULL AND idempotency_key = ?1)
   OR (?2 IS NOT NULL AND dedupe_key = ?2 AND dedupe_open = 1)
ORDER BY coalesce(idempotency_key = ?1, 0) DESC, id
LIMIT 1
