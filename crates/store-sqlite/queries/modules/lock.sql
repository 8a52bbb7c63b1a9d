-- Parameters: ?1 module, ?2 key, ?3 owner, ?4 lease (ms), ?5 fresh enough (µs;
--   not taken while the entry stays fresh past it; NULL = take it anyway),
--   ?6 force (ignore the backoff), ?7 now (µs).
-- One statement on the one writer, so that of racing takers exactly one
-- wins: the others' ON CONFLICT sees the winner's lock and its WHERE fails
-- (no row returned). A new entry starts empty and locked; an existing one
-- gets the lock and a new version when nobody holds it (or its lease ended)
-- and, as asked, it is neither fresh nor backing off after a failure.
-- (`WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.)
INSERT INTO capstan_module_entries AS e (module, key, status, version, lock_owner, lock_until, updated_at)
SELECT ?1, ?2, 'empty', 1, ?3, ?7 + ?4 * 1000, ?7 WHERE true
ON CONFLICT (module, key) DO UPDATE
SET version = e.version + 1, lock_owner = excluded.lock_owner,
    lock_until = excluded.lock_until, updated_at = excluded.updated_at
WHERE (e.lock_until IS NULL OR e.lock_until <= excluded.updated_at)
  AND (?5 IS NULL OR e.status = 'empty' OR e.fresh_until IS NULL OR e.fresh_until <= ?5)
  AND (?6 OR e.retry_at IS NULL OR e.retry_at <= excluded.updated_at)
RETURNING *
