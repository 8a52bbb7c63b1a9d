-- Capstan 0003: which node leads the maintenance services, for a term
-- (see the store's `leader` module). Times in microseconds since the epoch,
-- as everywhere in this schema.
CREATE TABLE capstan_leader (
    role TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    incarnation TEXT NOT NULL,
    elected_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
