DELETE FROM capstan_nodes WHERE id = ?1
