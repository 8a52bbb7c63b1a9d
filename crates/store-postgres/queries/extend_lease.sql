UPDATE capstan.jobs
SET lease_expires_at = coalesce($4::timestamptz, now()) + make_interval(secs => $5 / 1000.0),
    progress = coalesce($6, progress)
WHERE id = $1 AND attempt = $2 AND node_id = $3 AND state = 'running'
