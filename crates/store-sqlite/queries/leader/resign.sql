-- Parameters: ?1 node, ?2 incarnation.
DELETE FROM capstan_leader WHERE role = 'maintenance' AND node_id = ?1 AND incarnation = ?2
