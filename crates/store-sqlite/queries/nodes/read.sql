-- Parameters: ?1 node.
SELECT * FROM capstan_nodes WHERE id = ?1
