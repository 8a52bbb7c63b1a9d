SELECT queue, state, count(*) AS n FROM capstan.jobs GROUP BY queue, state ORDER BY queue
