#!/usr/bin/env bash
# What a claim costs when 100,000 jobs of a kind no node handles sit at the
# head of its queue (issue 11, M3), beside the same claim on a queue without
# them, on both backends.
#
#   scripts/unhandled-claim.sh postgres://user@host:port/db [sqlite-file]
#
# The PostgreSQL database is migrated by `capstan` first and gets two queues,
# `m3-clean` and `m3-head`, removed at the end; the SQLite file is created
# (default /tmp/capstan-m3.db) and removed. Each queue holds 1,000 jobs of
# kind `work` (the handled kind); `m3-head` also holds 100,000 jobs of kind
# `nobody` at a higher priority, so they come first in the claim order. A
# claim is the node's own: kind `work`, 100 jobs, rolled back after each call
# so every call sees the same rows. Three cases:
#   clean     the queue without the unhandled jobs
#   unparked  the unhandled jobs at the head, not yet set aside
#   parked    the same jobs set aside, as the parker leaves them
#   vacuumed  (PostgreSQL) the same, once a vacuum has run
set -euo pipefail

url=${1:?usage: scripts/unhandled-claim.sh postgres://... [sqlite-file]}
sqlite_file=${2:-/tmp/capstan-m3.db}
calls=${CALLS:-300}
root=$(cd "$(dirname "$0")/.." && pwd)
capstan="$root/target/release/capstan"
[ -x "$capstan" ] || cargo build --release --manifest-path "$root/Cargo.toml" -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== PostgreSQL ($calls claims per case, pgbench latency average)"
"$capstan" --database-url "$url" queues >/dev/null
psql -q -X -v ON_ERROR_STOP=1 "$url" <<'SQL'
DELETE FROM capstan.jobs WHERE queue IN ('m3-clean', 'm3-head');
INSERT INTO capstan.jobs (queue, kind, state, max_attempts, run_at, created_at)
SELECT q, 'work', 'available', 3, now() - interval '1 minute', now()
FROM unnest(ARRAY['m3-clean', 'm3-head']) AS q, generate_series(1, 1000);
INSERT INTO capstan.jobs (queue, kind, priority, state, max_attempts, run_at, created_at)
SELECT 'm3-head', 'nobody', 1, 'available', 3, now() - interval '1 minute', now()
FROM generate_series(1, 100000);
ANALYZE capstan.jobs;
SQL
cat >"$work/claim.sql" <<'SQL'
BEGIN;
SELECT count(*) FROM capstan.claim_jobs(:q, ARRAY['work'], 100, 'm3-node', now(), 60000, 30000, 'feedfacecafebeef');
ROLLBACK;
SQL
pg_case() {
    local name=$1 queue=$2
    local ms
    ms=$(pgbench -n -t "$calls" -f "$work/claim.sql" -D q="'$queue'" "$url" 2>/dev/null |
        awk '/latency average/ {print $4}')
    printf '  %-9s %8s ms per claim of 100\n' "$name" "$ms"
}
pg_case clean m3-clean
pg_case unparked m3-head
psql -q -X "$url" -c "UPDATE capstan.jobs SET unhandled = true WHERE queue = 'm3-head' AND kind = 'nobody'"
pg_case parked m3-head
# The parker's updates leave the old row versions' entries in the claim
# index until a vacuum (autovacuum's, in a running system) removes them; a
# claim steps over them meanwhile.
psql -q -X "$url" -c "VACUUM capstan.jobs"
pg_case vacuumed m3-head
psql -q -X "$url" -c "DELETE FROM capstan.jobs WHERE queue IN ('m3-clean', 'm3-head')"

echo "== SQLite ($calls claims per case, mean)"
rm -f "$sqlite_file" "$sqlite_file-wal" "$sqlite_file-shm"
"$capstan" --database-url "sqlite://$sqlite_file" queues >/dev/null
python3 - "$sqlite_file" "$root/crates/store-sqlite/queries/claim.sql" "$calls" <<'PY'
import sqlite3, sys, time
path, claim_file, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
claim = open(claim_file).read()
db = sqlite3.connect(path, isolation_level=None)
now = int(time.time() * 1e6)
cols = "(queue, kind, priority, state, max_attempts, run_at, created_at)"
db.execute("BEGIN")
for q in ("m3-clean", "m3-head"):
    db.executemany(f"INSERT INTO capstan_jobs {cols} VALUES (?, 'work', 0, 'available', 3, ?, ?)",
                   [(q, now - 60_000_000, now)] * 1000)
db.executemany(f"INSERT INTO capstan_jobs {cols} VALUES ('m3-head', 'nobody', 1, 'available', 3, ?, ?)",
               [(now - 60_000_000, now)] * 100_000)
db.execute("COMMIT")
db.execute("ANALYZE")

def case(name, queue):
    total = 0.0
    for _ in range(calls):
        db.execute("BEGIN IMMEDIATE")
        t = time.perf_counter()
        n = len(db.execute(claim, ("m3-node", now, 60000, 30000, queue, '["work"]', 100,
                                   "feedfacecafebeef")).fetchall())
        total += time.perf_counter() - t
        db.execute("ROLLBACK")
        assert n == 100, f"claimed {n}, expected 100"
    print(f"  {name:9} {total / calls * 1000:8.3f} ms per claim of 100")

case("clean", "m3-clean")
case("unparked", "m3-head")
db.execute("UPDATE capstan_jobs SET unhandled = 1 WHERE queue = 'm3-head' AND kind = 'nobody'")
case("parked", "m3-head")
PY
rm -f "$sqlite_file" "$sqlite_file-wal" "$sqlite_file-shm"
