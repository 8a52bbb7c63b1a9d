-- Parameters: ?1 job id, ?2 now.
UPDATE capstan_jobs
SET state = 'available',
    run_at = ?2,
    finished_at = NULL,
    cancel_requested = 0,
    unhandled = 0,
    max_attempts = max(max_attempts, attempt + 1)
WHERE id = ?1 AND state <> 'running'
RETURNING *
