UPDATE capstan.jobs
SET state = 'cancelled',
    finished_at = coalesce($2::timestamptz, now()),
    dedupe_open = false,
    unhandled = false,
    errors = errors || jsonb_build_array(jsonb_build_object(
        'at', coalesce($2::timestamptz, now()), 'attempt', attempt, 'class', 'cancelled',
        'message', 'cancelled by a user before it ran'))
WHERE id = $1 AND state IN ('scheduled', 'available', 'retryable')
RETURNING *
