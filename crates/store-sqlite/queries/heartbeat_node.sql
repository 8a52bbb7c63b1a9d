INSERT INTO capstan_nodes (id, queues, started_at, heartbeat_at)
VALUES (?1, '[]', ?2, ?2)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at
