-- Parameters: $1 finishes (JSON rows of store::jobs::FinishRow), $2 now.
-- The history is appended to only if it is a JSON array, so that every
-- job's history stays readable even if one was overwritten by hand.
-- A job a user asked to cancel never goes back to waiting: a retry, snooze
-- or hand-back of it ends `cancelled` instead (the request is kept in
-- `cancel_requested` until then, whatever reached the holder).
WITH up AS (
    UPDATE capstan.jobs j
    SET state = CASE WHEN j.cancel_requested AND f.state IN ('available', 'scheduled', 'retryable')
                     THEN 'cancelled' ELSE f.state END,
        result = CASE WHEN f.state = 'completed' THEN f.result ELSE j.result END,
        errors = CASE WHEN f.error_class IS NULL AND NOT j.cancel_requested THEN j.errors
                 ELSE CASE WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors
                      ELSE jsonb_build_array(jsonb_build_object('at', coalesce($2::timestamptz, now()), 'attempt', j.attempt, 'class', 'unknown',
                          'message', 'the stored error history was not a JSON array and was replaced')) END
                 || CASE WHEN f.error_class IS NULL THEN '[]'::jsonb
                    ELSE jsonb_build_array(jsonb_build_object(
                        'at', coalesce($2::timestamptz, now()), 'attempt', j.attempt,
                        'class', f.error_class, 'message', f.error_message)) END
                 || CASE WHEN j.cancel_requested AND f.state IN ('available', 'scheduled', 'retryable')
                    THEN jsonb_build_array(jsonb_build_object(
                        'at', coalesce($2::timestamptz, now()), 'attempt', j.attempt,
                        'class', 'cancelled', 'message', 'cancelled by a user; not run again'))
                    ELSE '[]'::jsonb END
                 END,
        run_at = CASE WHEN f.delay_ms IS NULL THEN j.run_at
                 ELSE coalesce($2::timestamptz, now())
                      + make_interval(secs => least(f.delay_ms, 3153600000000) / 1000.0) END,
        finished_at = CASE WHEN f.state IN ('completed', 'failed', 'cancelled')
                            OR (j.cancel_requested AND f.state IN ('available', 'scheduled', 'retryable'))
                      THEN coalesce($2::timestamptz, now()) END,
        attempt = j.attempt - f.refund,
        node_id = NULL,
        lease_expires_at = NULL
    FROM jsonb_to_recordset($1::jsonb) AS f(id bigint, lease text, state text, result jsonb,
                                             error_class text, error_message text, delay_ms bigint,
                                             refund integer)
    -- coalesce(): the state test must not match the jobs_running index, so
    -- each row is found by its id (one pkey lookup per finish). Left to
    -- itself the planner reads every running job through that index and
    -- hashes them: at 1,700 running, 100 finishes took 3.4 ms instead of 1.8.
    WHERE j.id = f.id AND j.lease_token = f.lease AND coalesce(j.state, '') = 'running'
    RETURNING j.id, f.lease, j.state, j.queue
),
-- Jobs handed back or retried at once are available again: wake the workers
-- of their queues (one NOTIFY for the whole batch).
notify AS (
    SELECT pg_notify('capstan_jobs', CASE WHEN length(q) > 7000 THEN '*' ELSE q END)
    FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM up WHERE state = 'available') s
    WHERE q IS NOT NULL
)
SELECT id, lease, (SELECT count(*) FROM notify) AS notified FROM up
