-- Parameters: none.
SELECT * FROM capstan_nodes ORDER BY id
