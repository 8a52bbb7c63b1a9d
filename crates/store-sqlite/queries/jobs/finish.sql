-- Parameters: ?1 finishes (JSON rows of store::jobs::FinishRow), ?2 now,
--   ?3 now as RFC 3339 text. (?3 SQLite only, after the shared ones.)
-- `+j.lease_token` and `+j.state` keep the planner off the running-jobs
-- index: the batch drives the join (one rowid look-up per finish) instead of
-- scanning the batch once per running job.
--
-- The history is appended to only if it is a JSON array: one row whose
-- `errors` was overwritten by hand must not fail the batch.
--
-- A job a user asked to cancel never goes back to waiting: a retry, snooze
-- or hand-back of it ends `cancelled` instead.
UPDATE capstan_jobs AS j
SET state = CASE WHEN j.cancel_requested = 1 AND f.state IN ('available', 'scheduled', 'retryable')
                 THEN 'cancelled' ELSE f.state END,
    result = CASE WHEN f.state = 'completed' THEN f.result ELSE j.result END,
    errors = CASE
             WHEN j.cancel_requested = 1 AND f.state IN ('available', 'scheduled', 'retryable')
             THEN CASE WHEN f.error_class IS NULL
                  THEN json_insert(CASE WHEN json_valid(j.errors) AND json_type(j.errors) = 'array' THEN j.errors
                      ELSE json_array(json_object('at', ?3, 'attempt', j.attempt, 'class', 'unknown', 'message',
                           'the stored error history was not a JSON array and was replaced')) END,
                      '$[#]', json_object('at', ?3, 'attempt', j.attempt, 'class', 'cancelled',
                                     'message', 'cancelled by a user; not run again'))
                  ELSE json_insert(CASE WHEN json_valid(j.errors) AND json_type(j.errors) = 'array' THEN j.errors
                      ELSE json_array(json_object('at', ?3, 'attempt', j.attempt, 'class', 'unknown', 'message',
                           'the stored error history was not a JSON array and was replaced')) END,
                      '$[#]', json_object('at', ?3, 'attempt', j.attempt, 'class', f.error_class, 'message', f.error_message),
                      '$[#]', json_object('at', ?3, 'attempt', j.attempt, 'class', 'cancelled',
                                     'message', 'cancelled by a user; not run again'))
                  END
             WHEN f.error_class IS NULL THEN j.errors
             ELSE json_insert(CASE WHEN json_valid(j.errors) AND json_type(j.errors) = 'array' THEN j.errors
                      ELSE json_array(json_object('at', ?3, 'attempt', j.attempt, 'class', 'unknown', 'message',
                           'the stored error history was not a JSON array and was replaced')) END,
                 '$[#]', json_object('at', ?3, 'attempt', j.attempt, 'class', f.error_class, 'message', f.error_message))
             END,
    run_at = CASE WHEN f.delay_ms IS NULL THEN j.run_at ELSE ?2 + min(f.delay_ms, 3153600000000) * 1000 END,
    finished_at = CASE WHEN f.state IN ('completed', 'failed', 'cancelled')
                        OR (j.cancel_requested = 1 AND f.state IN ('available', 'scheduled', 'retryable'))
                  THEN ?2 ELSE NULL END,
    attempt = j.attempt - f.refund,
    node_id = NULL,
    lease_expires_at = NULL
FROM (
    SELECT value ->> '$.id' AS id,
           value ->> '$.lease' AS lease,
           value ->> '$.state' AS state,
           value -> '$.result' AS result,
           value ->> '$.error_class' AS error_class,
           value ->> '$.error_message' AS error_message,
           value ->> '$.delay_ms' AS delay_ms,
           value ->> '$.refund' AS refund
    FROM jsonb_each(?1)
) AS f
WHERE j.id = f.id AND +j.lease_token = f.lease AND +j.state = 'running'
-- The queue only of jobs made available again (to wake their workers).
RETURNING id, lease_token, CASE WHEN state = 'available' THEN queue END
