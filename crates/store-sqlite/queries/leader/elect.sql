-- Parameters: ?1 node, ?2 incarnation, ?3 term (ms), ?4 now (µs).
-- One statement on the one writer, so two bidders cannot both win an empty
-- or ended term. A leader's re-election keeps its elected_at. (`WHERE true`
-- tells SQLite's parser that ON CONFLICT belongs to the INSERT.)
INSERT INTO capstan_leader AS l (role, node_id, incarnation, elected_at, expires_at)
SELECT 'maintenance', ?1, ?2, ?4, ?4 + ?3 * 1000 WHERE true
ON CONFLICT (role) DO UPDATE
SET node_id = excluded.node_id, incarnation = excluded.incarnation,
    elected_at = CASE WHEN l.node_id = excluded.node_id AND l.incarnation = excluded.incarnation
                      THEN l.elected_at ELSE excluded.elected_at END,
    expires_at = excluded.expires_at
WHERE (l.node_id = excluded.node_id AND l.incarnation = excluded.incarnation)
   OR l.expires_at <= excluded.elected_at
RETURNING node_id
