-- The history is appended to only if it is a JSON array: one row whose
-- `errors` was overwritten by hand must not fail this statement for
-- every row it covers.
-- A node is dead once it has been silent for its own node timeout counted
-- from the later of its last beat and the rescuer's `healthy_since` (?3):
-- after an outage every node gets a full timeout to beat again. An expired
-- lease waits a node timeout (?4) past `healthy_since` too, so a holder can
-- write the finish it kept while the database was away. Rows of nodes that
-- are gone (a rescuer removed them) are taken at once.
UPDATE capstan_jobs
SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled'
                 WHEN attempt >= max_attempts THEN 'failed'
                 ELSE 'available' END,
    finished_at = CASE WHEN cancel_requested = 1 OR attempt >= max_attempts THEN ?1 ELSE NULL END,
    run_at = ?1,
    errors = json_insert(CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors
                 ELSE json_array(json_object('at', ?2, 'attempt', attempt, 'class', 'unknown', 'message',
                      'the stored error history was not a JSON array and was replaced')) END, '$[#]', json_object(
        'at', ?2, 'attempt', attempt, 'class', 'rescued',
        'message', CASE WHEN lease_expires_at < ?1
                        THEN 'lease expired: node ' || coalesce(node_id, '?') || ' neither finished nor heartbeat this attempt in time'
                        ELSE 'node ' || coalesce(node_id, '?') || ' stopped heartbeating' END)),
    node_id = NULL,
    lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM capstan_jobs INDEXED BY capstan_jobs_running
    WHERE state = 'running'
      AND (max(coalesce(lease_expires_at, 0), ?3 + ?4) < ?1
           OR node_id IS NULL
           OR node_id IN (SELECT id FROM capstan_nodes
                          WHERE max(heartbeat_at, ?3) + (expires_at - heartbeat_at) < ?1)
           OR node_id NOT IN (SELECT id FROM capstan_nodes))
    LIMIT ?5
)
RETURNING id, state, queue
