-- Parameters: $1 queue, $2 state, $3 kind, $4 tag, $5 before id, $6 ids (a
-- JSON array) (NULL = any, each), $7 limit. Newest first; `before` is the
-- keyset cursor.
SELECT * FROM capstan.jobs
WHERE ($1::text IS NULL OR queue = $1)
  AND ($2::text IS NULL OR state = $2)
  AND ($3::text IS NULL OR kind = $3)
  AND ($4::text IS NULL OR tags ? $4)
  AND ($5::bigint IS NULL OR id < $5)
  AND ($6::jsonb IS NULL OR id IN (SELECT jsonb_array_elements_text($6::jsonb)::bigint))
ORDER BY id DESC
LIMIT $7
