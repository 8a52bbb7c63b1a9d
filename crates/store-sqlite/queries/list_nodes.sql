SELECT id, queues, started_at, heartbeat_at FROM capstan_nodes ORDER BY id
