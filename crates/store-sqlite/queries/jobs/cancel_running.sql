-- Parameters: ?1 job id.
UPDATE capstan_jobs SET cancel_requested = 1
WHERE id = ?1 AND state = 'running'
RETURNING *
