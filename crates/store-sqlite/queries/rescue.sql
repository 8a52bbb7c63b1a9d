UPDATE capstan_jobs
SET state = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'available' END,
    finished_at = CASE WHEN attempt >= max_attempts THEN ?1 ELSE NULL END,
    run_at = ?1,
    errors = json_insert(errors, '$[#]', json_object(
        'at', ?2, 'attempt', attempt, 'class', 'rescued',
        'message', CASE WHEN lease_expires_at < ?1
                        THEN 'lease expired: node ' || node_id || ' neither finished nor heartbeat this attempt in time'
                        ELSE 'node ' || node_id || ' stopped heartbeating' END)),
    node_id = NULL,
    lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM capstan_jobs INDEXED BY capstan_jobs_running
    WHERE state = 'running'
      AND (lease_expires_at < ?1
           OR node_id NOT IN (SELECT id FROM capstan_nodes WHERE heartbeat_at >= ?1 - ?3 * 1000))
    LIMIT ?4
)
RETURNING id, state, queue
