-- Timeouts are bounded (at most a year) even for rows written without
-- validation, so the lease sum stays an integer. ?8 is fresh and random for
-- every claim: with the job's id it names one execution, never repeated.
UPDATE capstan_jobs
SET state = 'running',
    attempt = attempt + 1,
    node_id = ?1,
    lease_token = ?8,
    attempted_at = ?2,
    lease_expires_at = ?2 + (min(coalesce(timeout_ms, ?3), 31536000000) + min(?4, 31536000000)) * 1000,
    dedupe_open = 0
WHERE id IN (
    SELECT id FROM capstan_jobs INDEXED BY capstan_jobs_claim
    WHERE state = 'available' AND unhandled = 0 AND queue = ?5 AND run_at <= ?2
      AND (?6 IS NULL OR kind IN (SELECT value FROM json_each(?6)))
    ORDER BY priority DESC, run_at, id
    LIMIT ?7
)
RETURNING *
