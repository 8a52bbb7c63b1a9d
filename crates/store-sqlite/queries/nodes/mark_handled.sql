-- Parameters: ?1 queues (a JSON array), ?2 kinds (a JSON array).
-- A node with these queues and kinds is here: its unhandled jobs go back in
-- the claim order. `*` in kinds: any kind.
UPDATE capstan_jobs SET unhandled = 0
WHERE unhandled = 1 AND state = 'available'
  AND queue IN (SELECT value FROM json_each(?1))
  AND (kind IN (SELECT value FROM json_each(?2)) OR EXISTS (SELECT 1 FROM json_each(?2) WHERE value = '*'))
RETURNING queue
