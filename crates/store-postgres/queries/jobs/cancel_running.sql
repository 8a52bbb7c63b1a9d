-- Parameters: $1 job id.
WITH up AS (
    UPDATE capstan.jobs SET cancel_requested = true
    WHERE id = $1 AND state = 'running'
    RETURNING *
)
SELECT up.*, pg_notify('capstan_control', 'cancel:' || up.id) IS NULL AS notified FROM up
