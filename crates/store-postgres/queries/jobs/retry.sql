-- Parameters: $1 job id, $2 now.
WITH up AS (
    UPDATE capstan.jobs
    SET state = 'available',
        run_at = coalesce($2::timestamptz, now()),
        finished_at = NULL,
        cancel_requested = false,
        unhandled = false,
        max_attempts = greatest(max_attempts, attempt + 1)
    WHERE id = $1 AND state <> 'running'
    RETURNING *
)
SELECT up.*, pg_notify('capstan_jobs', up.queue) IS NULL AS notified FROM up
