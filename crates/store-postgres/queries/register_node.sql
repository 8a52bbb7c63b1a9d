INSERT INTO capstan.nodes (id, queues, started_at, heartbeat_at)
VALUES ($1, $2, coalesce($3::timestamptz, now()), coalesce($3::timestamptz, now()))
ON CONFLICT (id) DO UPDATE SET queues = excluded.queues, started_at = excluded.started_at,
                               heartbeat_at = excluded.heartbeat_at
