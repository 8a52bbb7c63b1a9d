DELETE FROM capstan.nodes
WHERE heartbeat_at < coalesce($1::timestamptz, now()) - make_interval(secs => $2 / 1000.0)
