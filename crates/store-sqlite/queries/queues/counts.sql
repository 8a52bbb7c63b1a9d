-- Parameters: none.
SELECT queue, state, count(*) AS n, sum(unhandled) AS unhandled
FROM capstan_jobs GROUP BY queue, state ORDER BY queue
