DELETE FROM capstan_jobs WHERE queue = ?1
