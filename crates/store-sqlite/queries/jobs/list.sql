-- Parameters: ?1 queue, ?2 state, ?3 kind, ?4 tag, ?5 before id, ?6 ids (a
-- JSON array) (NULL = any, each), ?7 limit. Newest first; `before` is the
-- keyset cursor.
SELECT * FROM capstan_jobs
WHERE (?1 IS NULL OR queue = ?1)
  AND (?2 IS NULL OR state = ?2)
  AND (?3 IS NULL OR kind = ?3)
  AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?4))
  AND (?5 IS NULL OR id < ?5)
  AND (?6 IS NULL OR id IN (SELECT value FROM json_each(?6)))
ORDER BY id DESC
LIMIT ?7
