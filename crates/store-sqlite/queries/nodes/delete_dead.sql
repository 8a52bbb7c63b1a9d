-- Parameters: ?1 now, ?2 the rescuer's healthy_since.
DELETE FROM capstan_nodes WHERE max(heartbeat_at, ?2) + (expires_at - heartbeat_at) < ?1
