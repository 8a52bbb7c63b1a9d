-- Parameters: $1 node, $2 incarnation.
DELETE FROM capstan.nodes WHERE id = $1 AND incarnation = $2
