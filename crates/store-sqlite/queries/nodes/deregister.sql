-- Parameters: ?1 node, ?2 incarnation.
DELETE FROM capstan_nodes WHERE id = ?1 AND incarnation = ?2
