-- Parameters: $1 node, $2 now.
-- The history is appended to only if it is a JSON array, so that every
-- job's history stays readable even if one was overwritten by hand.
WITH up AS (
    UPDATE capstan.jobs
    SET state = CASE WHEN cancel_requested THEN 'cancelled'
                     WHEN attempt >= max_attempts THEN 'failed'
                     ELSE 'available' END,
        finished_at = CASE WHEN cancel_requested OR attempt >= max_attempts
                      THEN coalesce($2::timestamptz, now()) END,
        run_at = coalesce($2::timestamptz, now()),
        errors = CASE WHEN jsonb_typeof(errors) = 'array' THEN errors
                 ELSE jsonb_build_array(jsonb_build_object('at', coalesce($2::timestamptz, now()), 'attempt', attempt, 'class', 'unknown',
                     'message', 'the stored error history was not a JSON array and was replaced')) END
                 || jsonb_build_array(jsonb_build_object(
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
