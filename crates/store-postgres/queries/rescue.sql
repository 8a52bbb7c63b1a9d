WITH picked AS (
    SELECT id FROM capstan.jobs
    WHERE state = 'running'
      AND (lease_expires_at < coalesce($1::timestamptz, now())
           OR node_id IS NULL
           OR node_id NOT IN (SELECT id FROM capstan.nodes
                              WHERE heartbeat_at >= coalesce($1::timestamptz, now())
                                                   - make_interval(secs => $2 / 1000.0)))
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
up AS (
    UPDATE capstan.jobs j
    SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'failed' ELSE 'available' END,
        finished_at = CASE WHEN j.attempt >= j.max_attempts THEN coalesce($1::timestamptz, now()) END,
        run_at = coalesce($1::timestamptz, now()),
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'at', coalesce($1::timestamptz, now()), 'attempt', j.attempt, 'class', 'rescued',
            'message', CASE WHEN j.lease_expires_at < coalesce($1::timestamptz, now())
                            THEN 'lease expired: node ' || coalesce(j.node_id, '?')
                                 || ' neither finished nor heartbeat this attempt in time'
                            ELSE 'node ' || coalesce(j.node_id, '?') || ' stopped heartbeating' END)),
        node_id = NULL,
        lease_expires_at = NULL
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id, j.state, j.queue
),
notify AS (
    SELECT pg_notify('capstan_jobs', CASE WHEN length(q) > 7000 THEN '*' ELSE q END)
    FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM up WHERE state = 'available') s
    WHERE q IS NOT NULL
)
SELECT id, state, queue, (SELECT count(*) FROM notify) AS notified FROM up
