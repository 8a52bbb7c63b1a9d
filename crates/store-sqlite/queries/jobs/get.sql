SELECT * FROM capstan_jobs WHERE id = ?1
