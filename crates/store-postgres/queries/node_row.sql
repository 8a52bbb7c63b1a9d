SELECT * FROM capstan.nodes WHERE id = $1 FOR UPDATE
