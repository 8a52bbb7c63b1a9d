-- Parameters: none.
-- Whether pg_stat_statements is installed in this database (and so readable).
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')
