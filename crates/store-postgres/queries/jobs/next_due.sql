-- Parameters: none.
SELECT min(run_at) FROM capstan.jobs WHERE state IN ('scheduled', 'retryable')
