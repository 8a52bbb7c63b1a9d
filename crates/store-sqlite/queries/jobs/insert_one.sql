-- One job, one statement (autocommit): the common single enqueue in one round trip.
INSERT INTO capstan_jobs (queue, kind, args, priority, state, max_attempts, run_at, timeout_ms,
                          tags, idempotency_key, dedupe_key, dedupe_open, created_at)
VALUES (?1, ?2, ?3, ?4, CASE WHEN ?5 > ?11 THEN 'scheduled' ELSE 'available' END, ?6, ?5, ?7,
        ?8, ?9, ?10, ?10 IS NOT NULL, ?11)
ON CONFLICT DO NOTHING
RETURNING id, state
