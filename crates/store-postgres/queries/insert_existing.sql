SELECT id, state FROM capstan.jobs
WHERE ($1::text IS NOT NULL AND idempotency_key = $1)
   OR ($2::text IS NOT NULL AND dedupe_key = $2 AND dedupe_open)
ORDER BY idempotency_key IS NULL, id
LIMIT 1
