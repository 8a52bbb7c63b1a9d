-- Parameters: $1 node, $2 incarnation, $3 term (ms), $4 now (NULL = the database's clock).
-- One statement, so two bidders cannot both win an empty or ended term: the
-- loser's ON CONFLICT sees the winner's row and its WHERE fails. A leader's
-- re-election keeps its elected_at.
INSERT INTO capstan.leader AS l (role, node_id, incarnation, elected_at, expires_at)
SELECT 'maintenance', $1, $2, t.now, t.now + make_interval(secs => $3 / 1000.0)
FROM (SELECT coalesce($4::timestamptz, now()) AS now) t
ON CONFLICT (role) DO UPDATE
SET node_id = excluded.node_id, incarnation = excluded.incarnation,
    elected_at = CASE WHEN l.node_id = excluded.node_id AND l.incarnation = excluded.incarnation
                      THEN l.elected_at ELSE excluded.elected_at END,
    expires_at = excluded.expires_at
WHERE (l.node_id = excluded.node_id AND l.incarnation = excluded.incarnation)
   OR l.expires_at <= excluded.elected_at
RETURNING l.node_id
