-- Walk the head of the queue's claim order (where such jobs slow every
-- claim) and set aside the jobs whose kind no live node serving the queue
-- has a handler for.
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
head AS (
    SELECT id, kind FROM capstan.jobs
    WHERE state = 'available' AND NOT unhandled AND queue = $1
    ORDER BY priority DESC, run_at, id
    LIMIT $2
),
up AS (
    UPDATE capstan.jobs j SET unhandled = true
    FROM head, t
    WHERE j.id = head.id AND j.state = 'available' AND NOT j.unhandled
      AND NOT EXISTS (SELECT 1 FROM capstan.nodes n
                      WHERE n.expires_at >= t.now AND n.queues ? $1 AND n.kinds ? head.kind)
    RETURNING j.id
)
SELECT count(*) FROM up
