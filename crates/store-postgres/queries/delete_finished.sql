DELETE FROM capstan.jobs
WHERE id IN (
    SELECT id FROM capstan.jobs
    WHERE state = $1 AND finished_at < $2
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
