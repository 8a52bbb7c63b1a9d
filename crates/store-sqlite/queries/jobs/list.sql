-- Parameters: ?1 queue, ?2 state, ?3 kind (NULL = any, each), ?4 limit.
SELECT * FROM capstan_jobs
WHERE (?1 IS NULL OR queue = ?1)
  AND (?2 IS NULL OR state = ?2)
  AND (?3 IS NULL OR kind = ?3)
ORDER BY id DESC
LIMIT ?4
