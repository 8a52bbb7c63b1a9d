-- Parameters: ?1 state, ?2 now, ?3 retention (ms), ?4 limit.
DELETE FROM capstan_jobs
WHERE id IN (
    SELECT id FROM capstan_jobs INDEXED BY capstan_jobs_finished
    WHERE state IN ('completed', 'failed', 'cancelled') AND state = ?1 AND finished_at < ?2 - ?3 * 1000
    LIMIT ?4
)
