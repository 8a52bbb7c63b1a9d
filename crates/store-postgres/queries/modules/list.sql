-- Parameters: $1 module (NULL = every module), $2, $3 the (module, key) to
--   list after (NULL = from the start), $4 limit.
SELECT * FROM capstan.module_entries
WHERE ($1::text IS NULL OR module = $1)
  AND ($2::text IS NULL OR (module, key) > ($2, $3::text))
ORDER BY module, key
LIMIT $4
