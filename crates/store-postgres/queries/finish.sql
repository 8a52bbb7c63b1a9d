WITH up AS (
    UPDATE capstan.jobs j
    SET state = f.state,
        result = CASE WHEN f.state = 'completed' THEN f.result ELSE j.result END,
        errors = CASE WHEN f.error_class IS NULL THEN j.errors
                 ELSE j.errors || jsonb_build_array(jsonb_build_object(
                     'at', coalesce($2::timestamptz, now()), 'attempt', j.attempt,
                     'class', f.error_class, 'message', f.error_message))
                 END,
        run_at = CASE WHEN f.delay_ms IS NULL THEN j.run_at
                 ELSE coalesce($2::timestamptz, now()) + make_interval(secs => f.delay_ms / 1000.0) END,
        finished_at = CASE WHEN f.state IN ('completed', 'failed', 'cancelled')
                      THEN coalesce($2::timestamptz, now()) END,
        attempt = j.attempt - f.refund,
        node_id = NULL,
        lease_expires_at = NULL
    FROM jsonb_to_recordset($1::jsonb) AS f(id bigint, attempt integer, state text, result jsonb,
                                             error_class text, error_message text, delay_ms bigint,
                                             refund integer)
    WHERE j.id = f.id AND j.attempt = f.attempt AND j.node_id = $3 AND j.state = 'running'
    RETURNING j.id, j.state, j.queue
),
-- Jobs handed back or retried at once are available again: wake the workers
-- of their queues (one NOTIFY for the whole batch).
notify AS (
    SELECT pg_notify('capstan_jobs', CASE WHEN length(q) > 7000 THEN '*' ELSE q END)
    FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM up WHERE state = 'available') s
    WHERE q IS NOT NULL
)
SELECT id, (SELECT count(*) FROM notify) AS notified FROM up
