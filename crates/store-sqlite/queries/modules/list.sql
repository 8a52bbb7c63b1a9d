-- Parameters: ?1 module (NULL = every module), ?2, ?3 the (module, key) to
--   list after (NULL = from the start), ?4 limit.
SELECT * FROM capstan_module_entries
WHERE (?1 IS NULL OR module = ?1)
  AND (?2 IS NULL OR (module, key) > (?2, ?3))
ORDER BY module, key
LIMIT ?4
