-- The claim can resume after a key (priority, run_at, id) in claim order.
-- A producer draining a backlog passes the key of the last job of its last
-- full claim, so the index scan starts there instead of walking past the
-- entries of every job claimed since the last vacuum (dead or locked, they
-- pile up at the head of the claim index: with 200,000 claimed ahead, a
-- claim of 100 read 992 index pages from the head and 7 from the key).
-- Two ranges of the index, in claim order: the rest of the key's priority
-- after it, then the lower priorities. NULL after = from the start, as
-- before. The 8-argument claim of 0003 stays for nodes of the previous
-- version during a rolling upgrade.
CREATE FUNCTION capstan.claim_jobs(
    p_queue text, p_kinds text[], p_limit integer, p_node text, p_now timestamptz,
    p_default_timeout_ms bigint, p_grace_ms bigint, p_token text,
    p_after_priority smallint, p_after_run_at timestamptz, p_after_id bigint
) RETURNS SETOF capstan.jobs
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
    -- See 0003: a lost claim only makes its jobs available again.
    PERFORM set_config('synchronous_commit', 'off', true);
    IF p_after_id IS NULL THEN
        RETURN QUERY SELECT * FROM capstan.claim_jobs(
            p_queue, p_kinds, p_limit, p_node, p_now, p_default_timeout_ms, p_grace_ms, p_token);
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE capstan.jobs j
    SET state = 'running',
        attempt = j.attempt + 1,
        node_id = p_node,
        lease_token = p_token,
        attempted_at = p_now,
        lease_expires_at = p_now + make_interval(secs =>
            (least(coalesce(j.timeout_ms, p_default_timeout_ms), 31536000000)
             + least(p_grace_ms, 31536000000)) / 1000.0),
        dedupe_open = false
    WHERE j.ctid = ANY (ARRAY(
        SELECT s.ctid FROM (
            SELECT a.ctid FROM (
                SELECT ctid FROM capstan.jobs
                WHERE state = 'available' AND NOT unhandled AND queue = p_queue AND run_at <= p_now
                  AND (p_kinds IS NULL OR kind = ANY (p_kinds))
                  AND priority = p_after_priority AND (run_at, id) > (p_after_run_at, p_after_id)
                ORDER BY priority DESC, run_at, id
                LIMIT p_limit
                FOR UPDATE SKIP LOCKED
            ) a
            UNION ALL
            SELECT b.ctid FROM (
                SELECT ctid FROM capstan.jobs
                WHERE state = 'available' AND NOT unhandled AND queue = p_queue AND run_at <= p_now
                  AND (p_kinds IS NULL OR kind = ANY (p_kinds))
                  AND priority < p_after_priority
                ORDER BY priority DESC, run_at, id
                LIMIT p_limit
                FOR UPDATE SKIP LOCKED
            ) b
        ) s
        LIMIT p_limit
    ))
      AND j.state = 'available'
    RETURNING j.*;
END
$$;
