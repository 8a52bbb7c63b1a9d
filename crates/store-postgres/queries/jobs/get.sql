-- Parameters: $1 job id.
SELECT * FROM capstan.jobs WHERE id = $1
