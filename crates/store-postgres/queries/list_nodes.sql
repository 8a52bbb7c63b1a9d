SELECT id, queues, started_at, heartbeat_at FROM capstan.nodes ORDER BY id
