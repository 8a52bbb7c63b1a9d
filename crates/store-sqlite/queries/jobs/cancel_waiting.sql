-- Parameters: ?1 job id, ?2 now,
--   ?3 now as RFC 3339 text. (?3 SQLite only, after the shared ones.)
-- The history is appended to only if it is a JSON array: one row whose
-- `errors` was overwritten by hand must not fail this statement for
-- every row it covers.
UPDATE capstan_jobs
SET state = 'cancelled',
    finished_at = ?2,
    dedupe_open = 0,
    unhandled = 0,
    errors = json_insert(CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors
                 ELSE json_array(json_object('at', ?3, 'attempt', attempt, 'class', 'unknown', 'message',
                      'the stored error history was not a JSON array and was replaced')) END, '$[#]', json_object(
        'at', ?3, 'attempt', attempt, 'class', 'cancelled', 'message', 'cancelled by a user before it ran'))
WHERE id = ?1 AND state IN ('scheduled', 'available', 'retryable')
RETURNING *
