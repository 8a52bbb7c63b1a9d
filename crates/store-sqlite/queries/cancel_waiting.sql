UPDATE capstan_jobs
SET state = 'cancelled',
    finished_at = ?2,
    dedupe_open = 0,
    unhandled = 0,
    errors = json_insert(errors, '$[#]', json_object(
        'at', ?3, 'attempt', attempt, 'class', 'cancelled', 'message', 'cancelled by a user before it ran'))
WHERE id = ?1 AND state IN ('scheduled', 'available', 'retryable')
RETURNING *
