INSERT INTO capstan.nodes (id, queues, started_at, heartbeat_at)
VALUES ($1, '[]', coalesce($2::timestamptz, now()), coalesce($2::timestamptz, now()))
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at
