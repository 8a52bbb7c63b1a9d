DELETE FROM capstan.nodes WHERE id = $1 AND incarnation = $2
