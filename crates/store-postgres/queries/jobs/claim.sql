SELECT * FROM capstan.claim_jobs($1, $2, $3, $4, coalesce($5::timestamptz, now()), $6, $7, $8)
