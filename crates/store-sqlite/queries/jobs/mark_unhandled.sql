-- Parameters: ?1 queue, ?2 limit, ?3 now, ?4 the judging node's healthy_since.
-- Walk the head of the queue's claim order (where such jobs slow every
-- claim) and set aside the jobs whose kind no live node serving the queue
-- has a handler for (`*` in a node's kinds: any kind). The kinds are judged once each, not once per job. A
-- node is live as the rescue judges it: until the later of its last beat
-- and the caller's healthy_since (?4), plus its own timeout.
WITH head AS MATERIALIZED (
    SELECT id, kind FROM capstan_jobs INDEXED BY capstan_jobs_claim
    WHERE state = 'available' AND unhandled = 0 AND queue = ?1
    ORDER BY priority DESC, run_at, id
    LIMIT ?2
)
UPDATE capstan_jobs SET unhandled = 1
WHERE id IN (SELECT id FROM head)
  AND kind IN (
    SELECT DISTINCT head.kind FROM head
    WHERE NOT EXISTS (
        SELECT 1 FROM capstan_nodes AS n
        WHERE max(n.heartbeat_at, ?4) + (n.expires_at - n.heartbeat_at) >= ?3
          AND EXISTS (SELECT 1 FROM json_each(n.queues) WHERE value = ?1)
          AND EXISTS (SELECT 1 FROM json_each(n.kinds) WHERE value IN (head.kind, '*'))
    )
)
