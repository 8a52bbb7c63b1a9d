-- Parameters: $1 module, $2 key.
SELECT * FROM capstan.module_entries WHERE module = $1 AND key = $2
