WITH up AS (
    UPDATE capstan.jobs
    SET state = CASE WHEN cancel_requested THEN 'cancelled'
                     WHEN attempt >= max_attempts THEN 'failed'
                     ELSE 'available' END,
        finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts
                      THEN coalesce($2::timestamptz, now()) END,
        run_at = coalesce($2::timestamptz, now()),
        errors = errors || jsonb_build_array(jsonb_build_object(
            'at', coalesce($2::timestamptz, now()), 'attempt', attempt, 'class', 'rescued',
            'message', 'node ' || node_id || ' restarted while this attempt ran')),
        node_id = NULL,
        lease_expires_at = NULL
    WHERE state = 'running' AND node_id = $1
    RETURNING queue
),
notify AS (
    SELECT pg_notify('capstan_jobs', '*') FROM (SELECT count(*) AS n FROM up) s WHERE n > 0
)
SELECT count(*) AS n, (SELECT count(*) FROM notify) AS notified FROM up
