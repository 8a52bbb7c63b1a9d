-- The claim in PL/pgSQL instead of SQL: PL/pgSQL keeps the statement's plan
-- for the session, where a non-inlined SQL function is planned at every call
-- (measured with pgbench, 100-row claims on a 100,000-job queue: 1.57 ms
-- instead of 1.91 ms). The planner settings stay pinned as before.
CREATE OR REPLACE FUNCTION capstan.claim_jobs(
    p_queue text, p_kinds text[], p_limit integer, p_node text, p_now timestamptz,
    p_default_timeout_ms bigint, p_grace_ms bigint
) RETURNS SETOF capstan.jobs
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT id FROM capstan.jobs
        WHERE state = 'available' AND queue = p_queue AND run_at <= p_now
          AND (p_kinds IS NULL OR kind = ANY (p_kinds))
        ORDER BY priority DESC, run_at, id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE capstan.jobs j
    SET state = 'running',
        attempt = j.attempt + 1,
        node_id = p_node,
        attempted_at = p_now,
        lease_expires_at = p_now + make_interval(
            secs => (coalesce(j.timeout_ms, p_default_timeout_ms) + p_grace_ms) / 1000.0),
        dedupe_open = false,
        cancel_requested = false
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.*;
END
$$;
