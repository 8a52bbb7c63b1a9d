-- Parameters: $1 extensions (JSON rows: id, lease, lease_ms, progress), $2 now.
UPDATE capstan.jobs j
SET lease_expires_at = coalesce($2::timestamptz, now())
                       + make_interval(secs => least(e.lease_ms, 63072000000) / 1000.0),
    progress = coalesce(e.progress, j.progress)
FROM jsonb_to_recordset($1::jsonb) AS e(id bigint, lease text, lease_ms bigint, progress jsonb)
WHERE j.id = e.id AND j.lease_token = e.lease AND j.state = 'running'
RETURNING j.id, e.lease
