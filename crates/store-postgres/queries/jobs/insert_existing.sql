-- Parameters: $1 idempotency key, $2 dedupe key.
-- The job that holds the idempotency key wins over one that holds only the
-- dedupe key: the caller's idempotency key must map to its own job.
SELECT id, state FROM capstan.jobs
WHERE ($1::text IS NOT NULL AND idempotency_key = $1)
   OR ($2::text IS NOT NULL AND dedupe_key = $2 AND dedupe_open)
ORDER BY coalesce(idempotency_key = $1, false) DESC, id
LIMIT 1
