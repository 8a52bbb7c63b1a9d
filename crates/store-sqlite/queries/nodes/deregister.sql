DELETE FROM capstan_nodes WHERE id = ?1 AND incarnation = ?2
