-- Parameters: ?1 extensions (JSON rows: id, lease, lease_ms, progress), ?2 now.
UPDATE capstan_jobs AS j
SET lease_expires_at = ?2 + min(e.lease_ms, 63072000000) * 1000,
    progress = coalesce(e.progress, j.progress)
FROM (
    SELECT value ->> '$.id' AS id,
           value ->> '$.lease' AS lease,
           value ->> '$.lease_ms' AS lease_ms,
           value -> '$.progress' AS progress
    FROM jsonb_each(?1)
) AS e
WHERE j.id = e.id AND +j.lease_token = e.lease AND +j.state = 'running'
RETURNING id, lease_token
