-- Parameters: $1 queue, $2 limit, $3 now, $4 the judging node's healthy_since.
-- Walk the head of the queue's claim order (where such jobs slow every
-- claim) and set aside the jobs whose kind no live node serving the queue
-- has a handler for (`*` in a node's kinds: any kind). The kinds are judged once each, not once per job. A
-- node is live as the rescue judges it: until the later of its last beat
-- and the caller's healthy_since ($4), plus its own timeout.
WITH t AS (SELECT coalesce($3::timestamptz, now()) AS now),
head AS MATERIALIZED (
    SELECT id, kind FROM capstan.jobs
    WHERE state = 'available' AND NOT unhandled AND queue = $1
    ORDER BY priority DESC, run_at, id
    LIMIT $2
),
stray AS (
    SELECT DISTINCT head.kind FROM head, t
    WHERE NOT EXISTS (SELECT 1 FROM capstan.nodes n
                      WHERE greatest(n.heartbeat_at, $4::timestamptz)
                            + (n.expires_at - n.heartbeat_at) >= t.now
                        AND n.queues ? $1 AND (n.kinds ? head.kind OR n.kinds ? '*'))
),
up AS (
    UPDATE capstan.jobs j SET unhandled = true
    FROM head
    WHERE j.id = head.id AND head.kind IN (SELECT kind FROM stray)
      AND j.state = 'available' AND NOT j.unhandled
    RETURNING j.id
)
SELECT count(*) FROM up
