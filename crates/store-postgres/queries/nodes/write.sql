-- Parameters: $1 node, $2 incarnation, $3 queues (JSON), $4 kinds (JSON),
--   $5 heartbeat interval (ms), $6 started_at, $7 now, $8 node timeout (ms), $9 healthy_since.
INSERT INTO capstan.nodes (id, incarnation, queues, kinds, heartbeat_ms, started_at, heartbeat_at,
                           expires_at, healthy_since)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7 + make_interval(secs => $8 / 1000.0), $9)
ON CONFLICT (id) DO UPDATE
SET incarnation = excluded.incarnation, queues = excluded.queues, kinds = excluded.kinds,
    heartbeat_ms = excluded.heartbeat_ms, started_at = excluded.started_at,
    heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at,
    healthy_since = excluded.healthy_since,
    beats = capstan.nodes.beats + 1
