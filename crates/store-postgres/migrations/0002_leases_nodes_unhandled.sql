-- Capstan 0002: claim-unique lease tokens, jobs set aside when no live node
-- handles their kind, and node rows that carry their own expiry and health.

-- Written by each claim, fresh and random; every finish and heartbeat is
-- fenced on it (node + attempt can repeat after a hand-back or a snooze).
ALTER TABLE capstan.jobs ADD COLUMN lease_token text;
-- Available, but no live node serving the queue has a handler for the kind:
-- out of the claim order until one registers.
ALTER TABLE capstan.jobs ADD COLUMN unhandled boolean NOT NULL DEFAULT false;

DROP INDEX capstan.jobs_claim;
CREATE INDEX jobs_claim ON capstan.jobs (queue, priority DESC, run_at, id)
    WHERE state = 'available' AND NOT unhandled;
CREATE INDEX jobs_unhandled ON capstan.jobs (queue, kind) WHERE unhandled;

ALTER TABLE capstan.nodes ADD COLUMN incarnation text NOT NULL DEFAULT '';
ALTER TABLE capstan.nodes ADD COLUMN kinds jsonb NOT NULL DEFAULT '[]';
ALTER TABLE capstan.nodes ADD COLUMN heartbeat_ms bigint NOT NULL DEFAULT 5000;
-- Counts the row's writes: a node id is taken over only from a process that
-- did not beat meanwhile (times may stand still on a test clock).
ALTER TABLE capstan.nodes ADD COLUMN beats bigint NOT NULL DEFAULT 0;
-- The node's own expiry: its last heartbeat plus its own node_timeout.
ALTER TABLE capstan.nodes ADD COLUMN expires_at timestamptz;
-- Since when its beats have come without a stall (an outage resets it).
ALTER TABLE capstan.nodes ADD COLUMN healthy_since timestamptz;
UPDATE capstan.nodes SET expires_at = heartbeat_at + interval '25 seconds', healthy_since = heartbeat_at;
ALTER TABLE capstan.nodes ALTER COLUMN expires_at SET NOT NULL;
ALTER TABLE capstan.nodes ALTER COLUMN healthy_since SET NOT NULL;

DROP FUNCTION capstan.claim_jobs(text, text[], integer, text, timestamptz, bigint, bigint);

-- The claim, as a function so that its planner settings are pinned: right
-- after a bulk fill, with stale statistics, the planner may prefer a
-- sequential scan and a sort (ten times slower). Here it has no choice but
-- the claim index, whatever the statistics say. PL/pgSQL rather than SQL: it
-- keeps the statement's plan for the session, where a non-inlined SQL
-- function is planned at every call (pgbench, 100-row claims on a
-- 100,000-job queue: 1.57 ms instead of 1.91 ms).
-- p_token is fresh and random for every call (the caller draws it): with
-- the job's id it names one execution, never repeated.
CREATE FUNCTION capstan.claim_jobs(
    p_queue text, p_kinds text[], p_limit integer, p_node text, p_now timestamptz,
    p_default_timeout_ms bigint, p_grace_ms bigint, p_token text
) RETURNS SETOF capstan.jobs
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
    -- The claim's commit need not wait for the WAL flush: if a crash loses
    -- it, the job is simply available again (and a finish, which is durable,
    -- flushes the claim before it). This takes a disk flush off the path
    -- from enqueue to handler start.
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    WITH picked AS (
        SELECT id FROM capstan.jobs
        WHERE state = 'available' AND NOT unhandled AND queue = p_queue AND run_at <= p_now
          AND (p_kinds IS NULL OR kind = ANY (p_kinds))
        ORDER BY priority DESC, run_at, id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE capstan.jobs j
    SET state = 'running',
        attempt = j.attempt + 1,
        node_id = p_node,
        lease_token = p_token,
        attempted_at = p_now,
        -- Bounded even for rows written without validation (timeouts are at
        -- most a year): the sum can never overflow.
        lease_expires_at = p_now + make_interval(secs =>
            (least(coalesce(j.timeout_ms, p_default_timeout_ms), 31536000000)
             + least(p_grace_ms, 31536000000)) / 1000.0),
        dedupe_open = false
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.*;
END
$$;
