-- Parameters: ?1 now, ?2 limit.
UPDATE capstan_jobs
SET state = 'available'
WHERE id IN (
    SELECT id FROM capstan_jobs INDEXED BY capstan_jobs_due
    WHERE state IN ('scheduled', 'retryable') AND run_at <= ?1
    ORDER BY run_at
    LIMIT ?2
)
RETURNING queue
