UPDATE capstan_jobs
SET state = 'running',
    attempt = attempt + 1,
    node_id = ?1,
    attempted_at = ?2,
    lease_expires_at = ?2 + (coalesce(timeout_ms, ?3) + ?4) * 1000,
    dedupe_open = 0,
    cancel_requested = 0
WHERE id IN (
    SELECT id FROM capstan_jobs INDEXED BY capstan_jobs_claim
    WHERE state = 'available' AND queue = ?5 AND run_at <= ?2
      AND (?6 IS NULL OR kind IN (SELECT value FROM json_each(?6)))
    ORDER BY priority DESC, run_at, id
    LIMIT ?7
)
RETURNING *
