-- Parameters: none.
SELECT * FROM capstan.nodes ORDER BY id
