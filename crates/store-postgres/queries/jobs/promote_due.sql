-- Parameters: $1 now, $2 limit.
WITH picked AS (
    SELECT id FROM capstan.jobs
    WHERE state IN ('scheduled', 'retryable') AND run_at <= coalesce($1::timestamptz, now())
    ORDER BY run_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
up AS (
    UPDATE capstan.jobs j SET state = 'available' FROM picked WHERE j.id = picked.id
    RETURNING j.queue
),
notify AS (
    SELECT pg_notify('capstan_jobs', CASE WHEN length(q) > 7000 THEN '*' ELSE q END)
    FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM up) s
    WHERE q IS NOT NULL
)
SELECT queue, count(*) AS n, (SELECT count(*) FROM notify) AS notified FROM up GROUP BY queue
