-- Parameters: ?1 queue, ?2 kinds (a JSON array; NULL = any), ?3 limit, ?4 node, ?5 now,
--   ?6 default timeout (ms), ?7 lease grace (ms), ?8 the new lease token,
--   ?9, ?10, ?11 the key to resume after: priority, run_at, id (NULL = from the start).
-- Timeouts are bounded (at most a year) even for rows written without
-- validation, so the lease sum stays an integer. ?8 is fresh and random for
-- every claim: with the job's id it names one execution, never repeated.
UPDATE capstan_jobs
SET state = 'running',
    attempt = attempt + 1,
    node_id = ?4,
    lease_token = ?8,
    attempted_at = ?5,
    lease_expires_at = ?5 + (min(coalesce(timeout_ms, ?6), 31536000000) + min(?7, 31536000000)) * 1000,
    dedupe_open = 0
WHERE id IN (
    SELECT id FROM capstan_jobs INDEXED BY capstan_jobs_claim
    WHERE state = 'available' AND unhandled = 0 AND queue = ?1 AND run_at <= ?5
      AND (?2 IS NULL OR kind IN (SELECT value FROM json_each(?2)))
      AND (?11 IS NULL OR priority < ?9 OR (priority = ?9 AND (run_at, id) > (?10, ?11)))
    ORDER BY priority DESC, run_at, id
    LIMIT ?3
)
RETURNING *
