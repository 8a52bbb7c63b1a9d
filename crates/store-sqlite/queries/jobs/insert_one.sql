-- Parameters: ?1 queue, ?2 kind, ?3 args, ?4 priority, ?5 run_at, ?6 max_attempts,
--   ?7 timeout (ms), ?8 tags, ?9 idempotency key, ?10 dedupe key, ?11 now.
-- One job, one statement (autocommit): the common single enqueue in one round trip.
INSERT INTO capstan_jobs (queue, kind, args, priority, state, max_attempts, run_at, timeout_ms,
                          tags, idempotency_key, dedupe_key, dedupe_open, created_at)
VALUES (?1, ?2, ?3, ?4, CASE WHEN ?5 > ?11 THEN 'scheduled' ELSE 'available' END, ?6, ?5, ?7,
        ?8, ?9, ?10, ?10 IS NOT NULL, ?11)
ON CONFLICT DO NOTHING
RETURNING id, state
