SELECT * FROM capstan_nodes WHERE id = ?1
