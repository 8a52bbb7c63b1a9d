-- Parameters: none.
SELECT min(run_at) FROM capstan_jobs WHERE state IN ('scheduled', 'retryable')
