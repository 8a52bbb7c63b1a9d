-- Parameters: $1 queue, $2 kinds (a JSON array; NULL = any), $3 limit, $4 node, $5 now,
--   $6 default timeout (ms), $7 lease grace (ms), $8 the new lease token,
--   $9, $10, $11 the key to resume after: priority, run_at, id (NULL = from the start).
SELECT * FROM capstan.claim_jobs($1, $2, $3, $4, coalesce($5::timestamptz, now()), $6, $7, $8,
                                 $9::smallint, $10::timestamptz, $11::bigint)
