DELETE FROM capstan_nodes WHERE heartbeat_at < ?1 - ?2 * 1000
