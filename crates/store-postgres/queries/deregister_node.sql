DELETE FROM capstan.nodes WHERE id = $1
