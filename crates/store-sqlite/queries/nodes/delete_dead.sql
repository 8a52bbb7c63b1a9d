DELETE FROM capstan_nodes WHERE max(heartbeat_at, ?2) + (expires_at - heartbeat_at) < ?1
