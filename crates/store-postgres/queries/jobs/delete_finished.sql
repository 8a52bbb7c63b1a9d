-- Parameters: $1 state, $2 now, $3 retention (ms), $4 limit.
DELETE FROM capstan.jobs
WHERE id IN (
    SELECT id FROM capstan.jobs
    WHERE state = $1
      AND finished_at < coalesce($2::timestamptz, now()) - make_interval(secs => $3 / 1000.0)
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
