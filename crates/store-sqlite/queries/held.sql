SELECT id, coalesce(lease_token, ''), cancel_requested FROM capstan_jobs
WHERE state = 'running' AND node_id = ?1
