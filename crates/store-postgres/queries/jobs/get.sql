SELECT * FROM capstan.jobs WHERE id = $1
