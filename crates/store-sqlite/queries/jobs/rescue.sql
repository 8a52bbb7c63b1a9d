-- Parameters: ?1 now, ?2 the rescuer's healthy_since, ?3 limit,
--   ?4 now as RFC 3339 text. (?4 SQLite only, after the shared ones.)
-- The history is appended to only if it is a JSON array: one row whose
-- `errors` was overwritten by hand must not fail this statement for
-- every row it covers.
-- A node is dead once it has been silent for its own node timeout counted
-- from the later of its last beat and the rescuer's `healthy_since` (?2):
-- after an outage every node gets a full timeout to beat again. The expired
-- lease of a live holder is taken once the holder's own node timeout has
-- passed since the later of the lease's expiry and `healthy_since`: the
-- holder may have kept a finish through a stall too short to be seen, and
-- a live node always writes its own. Rows of nodes that are gone (a
-- rescuer removed them) are taken at once.
UPDATE capstan_jobs
SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled'
                 WHEN attempt >= max_attempts THEN 'failed'
                 ELSE 'available' END,
    finished_at = CASE WHEN cancel_requested = 1 OR attempt >= max_attempts THEN ?1 ELSE NULL END,
    run_at = ?1,
    errors = json_insert(CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors
                 ELSE json_array(json_object('at', ?4, 'attempt', attempt, 'class', 'unknown', 'message',
                      'the stored error history was not a JSON array and was replaced')) END, '$[#]', json_object(
        'at', ?4, 'attempt', attempt, 'class', 'rescued',
        'message', CASE WHEN lease_expires_at < ?1
                        THEN 'lease expired: node ' || coalesce(node_id, '?') || ' neither finished nor heartbeat this attempt in time'
                        ELSE 'node ' || coalesce(node_id, '?') || ' stopped heartbeating' END)),
    node_id = NULL,
    lease_expires_at = NULL
WHERE id IN (
    SELECT j.id FROM capstan_jobs AS j INDEXED BY capstan_jobs_running
    WHERE j.state = 'running'
      AND (j.node_id IS NULL
           OR j.node_id NOT IN (SELECT id FROM capstan_nodes)
           OR EXISTS (SELECT 1 FROM capstan_nodes n
                      WHERE n.id = j.node_id
                        AND (max(n.heartbeat_at, ?2) + (n.expires_at - n.heartbeat_at) < ?1
                             OR max(coalesce(j.lease_expires_at, 0), ?2)
                                + (n.expires_at - n.heartbeat_at) < ?1)))
    LIMIT ?3
)
RETURNING id, state, queue
