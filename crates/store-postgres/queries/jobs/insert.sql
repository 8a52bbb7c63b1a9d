-- Parameters: $1 jobs (JSON rows), $2 now.
WITH input AS MATERIALIZED (
    SELECT nextval('capstan.jobs_id_seq') AS id, e.ord, e.j
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(j, ord)
),
ins AS (
    INSERT INTO capstan.jobs (id, queue, kind, args, priority, state, max_attempts, run_at,
                              timeout_ms, tags, idempotency_key, dedupe_key, dedupe_open, created_at)
    SELECT i.id, i.j ->> 'queue', i.j ->> 'kind', coalesce(i.j -> 'args', 'null'::jsonb),
           (i.j ->> 'priority')::smallint,
           CASE WHEN r.run_at > coalesce($2::timestamptz, now()) THEN 'scheduled' ELSE 'available' END,
           (i.j ->> 'max_attempts')::integer, r.run_at, (i.j ->> 'timeout_ms')::bigint,
           coalesce(i.j -> 'tags', '[]'::jsonb), i.j ->> 'idempotency_key', i.j ->> 'dedupe_key',
           i.j ->> 'dedupe_key' IS NOT NULL, coalesce($2::timestamptz, now())
    FROM input i
    CROSS JOIN LATERAL (
        SELECT coalesce((i.j ->> 'run_at')::timestamptz,
                        coalesce($2::timestamptz, now())
                        + make_interval(secs => coalesce((i.j ->> 'delay_ms')::bigint, 0) / 1000.0))
               AS run_at
    ) r
    -- Keyed rows in key order: two batches that share keys then take them
    -- in the same order, and cannot deadlock on each other's inserts.
    ORDER BY i.j ->> 'idempotency_key', i.j ->> 'dedupe_key', i.ord
    ON CONFLICT DO NOTHING
    RETURNING id, state, queue
),
-- One NOTIFY per statement, never one per job: NOTIFY takes a global lock at commit.
notify AS (
    SELECT pg_notify('capstan_jobs',
                     CASE WHEN length(q) > 7000 THEN '*' ELSE q END)
    FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM ins WHERE state = 'available') s
    WHERE q IS NOT NULL
)
SELECT i.id, ins.state, ins.id IS NOT NULL AS inserted, (SELECT count(*) FROM notify) AS notified
FROM input i
LEFT JOIN ins ON ins.id = i.id
ORDER BY i.ord
