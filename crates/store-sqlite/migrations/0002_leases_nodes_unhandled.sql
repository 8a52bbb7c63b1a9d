-- Capstan 0002: claim-unique lease tokens, jobs set aside when no live node
-- handles their kind, and node rows that carry their own expiry and health.

-- Written by each claim, fresh and random; every finish and heartbeat is
-- fenced on it (node + attempt can repeat after a hand-back or a snooze).
-- Kept after the job leaves `running`, as the token of its last claim.
ALTER TABLE capstan_jobs ADD COLUMN lease_token TEXT;
-- 1: available, but no live node serving the queue has a handler for the
-- kind: out of the claim order until one registers.
ALTER TABLE capstan_jobs ADD COLUMN unhandled INTEGER NOT NULL DEFAULT 0;

DROP INDEX capstan_jobs_claim;
CREATE INDEX capstan_jobs_claim ON capstan_jobs (queue, priority DESC, run_at, id)
    WHERE state = 'available' AND unhandled = 0;
CREATE INDEX capstan_jobs_unhandled ON capstan_jobs (queue, kind) WHERE unhandled = 1;

ALTER TABLE capstan_nodes ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';
ALTER TABLE capstan_nodes ADD COLUMN kinds TEXT NOT NULL DEFAULT '[]';
ALTER TABLE capstan_nodes ADD COLUMN heartbeat_ms INTEGER NOT NULL DEFAULT 5000;
-- Counts the row's writes: a node id is taken over only from a process that
-- did not beat meanwhile (times may stand still on a test clock).
ALTER TABLE capstan_nodes ADD COLUMN beats INTEGER NOT NULL DEFAULT 0;
-- The node's own expiry: its last heartbeat plus its own node_timeout.
ALTER TABLE capstan_nodes ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
-- Since when its beats have come without a stall (an outage resets it).
ALTER TABLE capstan_nodes ADD COLUMN healthy_since INTEGER NOT NULL DEFAULT 0;
UPDATE capstan_nodes SET expires_at = heartbeat_at + 25000000, healthy_since = heartbeat_at;
