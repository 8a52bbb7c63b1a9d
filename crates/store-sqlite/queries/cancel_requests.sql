SELECT id, attempt FROM capstan_jobs
WHERE state = 'running' AND node_id = ?1 AND cancel_requested = 1
