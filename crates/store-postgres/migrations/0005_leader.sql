-- Capstan 0005: which node leads the maintenance services, for a term
-- (see the store's `leader` module). Nodes of the previous version ignore
-- it and keep running their maintenance everywhere, which is safe: the
-- table only saves work.
CREATE TABLE capstan.leader (
    role text PRIMARY KEY,
    node_id text NOT NULL,
    incarnation text NOT NULL,
    elected_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
