-- Parameters: ?1 node.
SELECT id, coalesce(lease_token, ''), cancel_requested, coalesce(attempted_at, 0)
FROM capstan_jobs
WHERE state = 'running' AND node_id = ?1
