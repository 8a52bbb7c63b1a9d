-- Parameters: none.
-- The server's processes (backends and background processes alike).
SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL
