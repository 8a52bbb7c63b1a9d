SELECT queue, state, count(*) AS n FROM capstan_jobs GROUP BY queue, state ORDER BY queue
