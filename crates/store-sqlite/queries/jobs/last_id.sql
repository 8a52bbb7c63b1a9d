-- Parameters: none.
SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'capstan_jobs'), 0)
