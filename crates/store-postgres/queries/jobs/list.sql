-- Parameters: $1 queue, $2 state, $3 kind (NULL = any, each), $4 limit.
SELECT * FROM capstan.jobs
WHERE ($1::text IS NULL OR queue = $1)
  AND ($2::text IS NULL OR state = $2)
  AND ($3::text IS NULL OR kind = $3)
ORDER BY id DESC
LIMIT $4
