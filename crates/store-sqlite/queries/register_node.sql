INSERT INTO capstan_nodes (id, queues, started_at, heartbeat_at)
VALUES (?1, ?2, ?3, ?3)
ON CONFLICT (id) DO UPDATE SET queues = excluded.queues, started_at = excluded.started_at,
                               heartbeat_at = excluded.heartbeat_at
