SELECT id, state FROM capstan_jobs
WHERE (?1 IS NOT NULL AND idempotency_key = ?1)
   OR (?2 IS NOT NULL AND dedupe_key = ?2 AND dedupe_open = 1)
ORDER BY idempotency_key IS NULL, id
LIMIT 1
