-- Parameters: $1 job id, $2 now.
-- The history is appended to only if it is a JSON array, so that every
-- job's history stays readable even if one was overwritten by hand.
UPDATE capstan.jobs
SET state = 'cancelled',
    finished_at = coalesce($2::timestamptz, now()),
    dedupe_open = false,
    unhandled = false,
    errors = CASE WHEN jsonb_typeof(errors) = 'array' THEN errors
             ELSE jsonb_build_array(jsonb_build_object('at', coalesce($2::timestamptz, now()), 'attempt', attempt, 'class', 'unknown',
                 'message', 'the stored error history was not a JSON array and was replaced')) END
             || jsonb_build_array(jsonb_build_object(
        'at', coalesce($2::timestamptz, now()), 'attempt', attempt, 'class', 'cancelled',
        'message', 'cancelled by a user before it ran'))
WHERE id = $1 AND state IN ('scheduled', 'available', 'retryable')
RETURNING *
