-- Parameters: none.
SELECT queue, state, count(*) AS n, count(*) FILTER (WHERE unhandled) AS unhandled
FROM capstan.jobs GROUP BY queue, state ORDER BY queue
