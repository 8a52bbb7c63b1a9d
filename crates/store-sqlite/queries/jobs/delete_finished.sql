DELETE FROM capstan_jobs
WHERE id IN (
    SELECT id FROM capstan_jobs INDEXED BY capstan_jobs_finished
    WHERE state IN ('completed', 'failed', 'cancelled') AND state = ?1 AND finished_at < ?2
    LIMIT ?3
)
