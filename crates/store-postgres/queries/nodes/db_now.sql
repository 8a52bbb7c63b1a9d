-- Parameters: $1 now (NULL = the database's clock).
SELECT coalesce($1::timestamptz, now())
