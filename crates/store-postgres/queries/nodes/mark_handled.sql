-- Parameters: $1 queues (a JSON array), $2 kinds (a JSON array).
-- A node with these queues and kinds is here: its unhandled jobs go back in
-- the claim order, and its workers are woken. `*` in kinds: any kind.
WITH up AS (
    UPDATE capstan.jobs SET unhandled = false
    WHERE unhandled AND state = 'available'
      AND queue IN (SELECT jsonb_array_elements_text($1::jsonb))
      AND ($2::jsonb ? '*' OR kind IN (SELECT jsonb_array_elements_text($2::jsonb)))
    RETURNING queue
),
notify AS (
    SELECT pg_notify('capstan_jobs', CASE WHEN length(q) > 7000 THEN '*' ELSE q END)
    FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM up) s
    WHERE q IS NOT NULL
)
SELECT count(*) AS n, (SELECT count(*) FROM notify) AS notified FROM up
