DELETE FROM capstan.jobs WHERE queue = $1
