-- Parameters: $1 queue, $2 kinds (a JSON array; NULL = any), $3 limit, $4 node, $5 now,
--   $6 default timeout (ms), $7 lease grace (ms), $8 the new lease token.
SELECT * FROM capstan.claim_jobs($1, $2, $3, $4, coalesce($5::timestamptz, now()), $6, $7, $8)
