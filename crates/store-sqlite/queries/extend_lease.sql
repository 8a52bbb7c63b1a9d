UPDATE capstan_jobs
SET lease_expires_at = ?4 + ?5 * 1000,
    progress = coalesce(?6, progress)
WHERE id = ?1 AND attempt = ?2 AND node_id = ?3 AND state = 'running'
