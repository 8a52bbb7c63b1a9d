-- Parameters: ?1 job id.
SELECT * FROM capstan_jobs WHERE id = ?1
