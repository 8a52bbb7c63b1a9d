-- Parameters: $1 now, $2 the rescuer's healthy_since, $3 limit.
-- The history is appended to only if it is a JSON array, so that every
-- job's history stays readable even if one was overwritten by hand.
-- A node is dead once it has been silent for its own node timeout counted
-- from the later of its last beat and the rescuer's `healthy_since` ($2):
-- after an outage every node gets a full timeout to beat again. The expired
-- lease of a live holder is taken once the holder's own node timeout has
-- passed since the later of the lease's expiry and `healthy_since`: the
-- holder may have kept a finish through a stall too short to be seen, and
-- a live node always writes its own. Rows of nodes that are gone (a
-- rescuer removed them) are taken at once.
WITH t AS (
    SELECT coalesce($1::timestamptz, now()) AS now,
           coalesce($2::timestamptz, '-infinity'::timestamptz) AS healthy_since
),
dead AS (
    SELECT n.id FROM capstan.nodes n, t
    WHERE greatest(n.heartbeat_at, t.healthy_since) + (n.expires_at - n.heartbeat_at) < t.now
),
picked AS (
    SELECT j.id FROM capstan.jobs j, t
    WHERE j.state = 'running'
      AND (j.node_id IS NULL
           OR j.node_id IN (SELECT id FROM dead)
           OR NOT EXISTS (SELECT 1 FROM capstan.nodes n WHERE n.id = j.node_id)
           OR EXISTS (SELECT 1 FROM capstan.nodes n
                      WHERE n.id = j.node_id
                        AND greatest(j.lease_expires_at, t.healthy_since)
                            + (n.expires_at - n.heartbeat_at) < t.now))
    LIMIT $3
    FOR UPDATE OF j SKIP LOCKED
),
up AS (
    UPDATE capstan.jobs j
    SET state = CASE WHEN j.cancel_requested THEN 'cancelled'
                     WHEN j.attempt >= j.max_attempts THEN 'failed'
                     ELSE 'available' END,
        finished_at = CASE WHEN j.cancel_requested OR j.attempt >= j.max_attempts THEN t.now END,
        run_at = t.now,
        errors = CASE WHEN jsonb_typeof(j.errors) = 'array' THEN j.errors
                 ELSE jsonb_build_array(jsonb_build_object('at', t.now, 'attempt', j.attempt, 'class', 'unknown',
                     'message', 'the stored error history was not a JSON array and was replaced')) END
                 || jsonb_build_array(jsonb_build_object(
            'at', t.now, 'attempt', j.attempt, 'class', 'rescued',
            'message', CASE WHEN j.lease_expires_at < t.now
                            THEN 'lease expired: node ' || coalesce(j.node_id, '?')
                                 || ' neither finished nor heartbeat this attempt in time'
                            ELSE 'node ' || coalesce(j.node_id, '?') || ' stopped heartbeating' END)),
        node_id = NULL,
        lease_expires_at = NULL
    FROM picked, t
    WHERE j.id = picked.id
    RETURNING j.id, j.state, j.queue
),
gone AS (
    DELETE FROM capstan.nodes WHERE id IN (SELECT id FROM dead) RETURNING id
),
notify AS (
    SELECT pg_notify('capstan_jobs', CASE WHEN length(q) > 7000 THEN '*' ELSE q END)
    FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM up WHERE state = 'available') s
    WHERE q IS NOT NULL
)
SELECT coalesce((SELECT jsonb_agg(jsonb_build_array(id, state, queue)) FROM up), '[]') AS rescued,
       (SELECT count(*) FROM gone) AS removed,
       (SELECT count(*) FROM notify) AS notified
