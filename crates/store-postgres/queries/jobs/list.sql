-- Parameters: $1 queue, $2 state, $3 kind, $4 tag, $5 before id (NULL = any,
-- each), $6 limit. Newest first; `before` is the keyset cursor.
SELECT * FROM capstan.jobs
WHERE ($1::text IS NULL OR queue = $1)
  AND ($2::text IS NULL OR state = $2)
  AND ($3::text IS NULL OR kind = $3)
  AND ($4::text IS NULL OR tags ? $4)
  AND ($5::bigint IS NULL OR id < $5)
ORDER BY id DESC
LIMIT $6
