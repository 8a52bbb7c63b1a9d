-- Parameters: none.
-- Statements the server has run in this database since its statistics were
-- reset, as pg_stat_statements counts them (top-level statements only: a
-- statement inside a function is not another round trip).
SELECT coalesce(sum(calls), 0)::bigint
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND toplevel
