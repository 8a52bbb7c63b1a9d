-- Parameters: ?1 node, ?2 now, ?3 now as RFC 3339 text. (?3 SQLite only, after the shared ones.)
-- The history is appended to only if it is a JSON array: one row whose
-- `errors` was overwritten by hand must not fail this statement for
-- every row it covers.
UPDATE capstan_jobs
SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled'
                 WHEN attempt >= max_attempts THEN 'failed'
                 ELSE 'available' END,
    finished_at = CASE WHEN cancel_requested = 1 OR attempt >= max_attempts THEN ?2 ELSE NULL END,
    run_at = ?2,
    errors = json_insert(CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors
                 ELSE json_array(json_object('at', ?3, 'attempt', attempt, 'class', 'unknown', 'message',
                      'the stored error history was not a JSON array and was replaced')) END, '$[#]', json_object(
        'at', ?3, 'attempt', attempt, 'class', 'rescued',
        'message', 'node ' || node_id || ' restarted while this attempt ran')),
    node_id = NULL,
    lease_expires_at = NULL
WHERE state = 'running' AND node_id = ?1
RETURNING queue
