-- Parameters: ?1 queue.
DELETE FROM capstan_jobs WHERE queue = ?1
