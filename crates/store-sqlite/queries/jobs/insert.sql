-- Parameters: ?1 jobs (JSON rows), ?2 now,
--   ?3 the last id given. (?3 SQLite only, after the shared ones.)
-- One statement for the whole batch. Ids are assigned by the caller (?3 is the
-- last id ever given, read inside the same write transaction), so the rows
-- that RETURNING leaves out are exactly the ones that hit a key.
INSERT INTO capstan_jobs (id, queue, kind, args, priority, state, max_attempts, run_at, timeout_ms,
                          tags, idempotency_key, dedupe_key, dedupe_open, created_at)
SELECT ?3 + key + 1,
       value ->> '$.queue',
       value ->> '$.kind',
       value -> '$.args',
       value ->> '$.priority',
       CASE WHEN value ->> '$.run_at' > ?2 THEN 'scheduled' ELSE 'available' END,
       value ->> '$.max_attempts',
       value ->> '$.run_at',
       value ->> '$.timeout_ms',
       value -> '$.tags',
       value ->> '$.idempotency_key',
       value ->> '$.dedupe_key',
       value ->> '$.dedupe_key' IS NOT NULL,
       ?2
FROM jsonb_each(?1)
WHERE true
ORDER BY key
ON CONFLICT DO NOTHING
RETURNING id, state
