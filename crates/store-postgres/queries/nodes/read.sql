-- Parameters: $1 node.
-- The advisory lock serialises every write of this node's row, even while
-- the row does not exist yet (FOR UPDATE locks nothing then): two processes
-- registering one id at once see each other.
SELECT n.* FROM (SELECT pg_advisory_xact_lock(hashtext('capstan.node:' || $1))) AS l
LEFT JOIN capstan.nodes AS n ON n.id = $1
