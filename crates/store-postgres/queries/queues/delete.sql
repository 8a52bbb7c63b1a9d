-- Parameters: $1 queue.
DELETE FROM capstan.jobs WHERE queue = $1
