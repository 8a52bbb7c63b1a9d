#!/usr/bin/env python3
"""Plant known bugs in Capstan one at a time and check the test suite catches each.

Each mutation is an exact text replacement in one file (SQL query files and
migrations of both backends, and a few lines of Rust): the script applies it,
runs the tests named for it, records whether they failed (caught) or passed
(survived), and restores the file. The list starts with the 22 mutations of
the December 2026 test-strength review (adapted to lease tokens, which
replaced node + attempt fencing) and adds the SQL of the hardening (cancel
stickiness, outage grace, unhandled kinds).

Usage (from the repository root; needs what `cargo test` needs):
    python3 scripts/mutations.py              # every mutation
    python3 scripts/mutations.py m2a m9b      # some of them
    python3 scripts/mutations.py --list

It prints a table (mutation, caught?, the first failing test) and writes it
to target/mutations.md; each run's test output is kept in
target/mutations/ID.log. A mutation whose text is not found fails loudly:
the list must follow the code.
"""

import os
import re
import subprocess
import sys
import time

PG = "crates/store-postgres"
LITE = "crates/store-sqlite"
CONF = ["-p", "capstan-store-conformance"]
RUNTIME = ["-p", "capstan-runtime"]
CLI = ["-p", "capstan-cli", "--test", "tests", "--", "enqueue_prints"]
CORE = ["-p", "capstan-core"]
SEAM = CONF + ["--test", "tests", "--", "notify", "tx"]

# (id, description, file, old text, new text, cargo test args)
MUTATIONS = [
    ("m1a", "finish fence: no token check (PostgreSQL)",
     f"{PG}/queries/jobs/finish.sql", "j.id = f.id AND j.lease_token = f.lease AND", "j.id = f.id AND", CONF),
    ("m1b", "finish fence: no token check (SQLite)",
     f"{LITE}/queries/jobs/finish.sql", "j.id = f.id AND +j.lease_token = f.lease AND", "j.id = f.id AND", CONF),
    ("m1c", "finish fence: a finished job can be finished again (SQLite)",
     f"{LITE}/queries/jobs/finish.sql", "AND +j.state = 'running'\n-- The queue", "\n-- The queue", CONF),
    ("m2a", "heartbeat fence: no token check (PostgreSQL)",
     f"{PG}/queries/jobs/extend_leases.sql", "j.id = e.id AND j.lease_token = e.lease AND", "j.id = e.id AND", CONF),
    ("m2b", "heartbeat fence: no token check (SQLite)",
     f"{LITE}/queries/jobs/extend_leases.sql", "j.id = e.id AND +j.lease_token = e.lease AND", "j.id = e.id AND", CONF),
    ("m2c", "heartbeat fence: only the id is checked (SQLite)",
     f"{LITE}/queries/jobs/extend_leases.sql", "WHERE j.id = e.id AND +j.lease_token = e.lease AND +j.state = 'running'", "WHERE j.id = e.id", CONF),
    ("m3", "dedupe: the claim leaves dedupe_open set (SQLite)",
     f"{LITE}/queries/jobs/claim.sql", "    dedupe_open = 0\n", "    dedupe_open = dedupe_open\n", CONF),
    ("m4", "idempotency: the unique index is a plain index (SQLite)",
     f"{LITE}/migrations/0001_jobs.sql", "CREATE UNIQUE INDEX capstan_jobs_idempotency", "CREATE INDEX capstan_jobs_idempotency", CONF),
    ("m5a", "claim: FOR UPDATE without SKIP LOCKED (PostgreSQL)",
     f"{PG}/migrations/0002_leases_nodes_unhandled.sql", "        FOR UPDATE SKIP LOCKED\n    )\n    UPDATE capstan.jobs j\n    SET state = 'running'", "        FOR UPDATE\n    )\n    UPDATE capstan.jobs j\n    SET state = 'running'", CONF),
    ("m5b", "claim: other queues are claimed too (SQLite)",
     f"{LITE}/queries/jobs/claim.sql", "unhandled = 0 AND queue = ?1 AND", "unhandled = 0 AND", CONF),
    ("m6a", "backoff is linear",
     "crates/core/src/retry.rs", "self.base_delay.as_secs_f64() * self.multiplier.powi(exp)", "self.base_delay.as_secs_f64() * (1.0 + (self.multiplier - 1.0) * exp as f64)", CORE),
    ("m6b", "backoff multiplies instead of raising to a power",
     "crates/core/src/retry.rs", "self.base_delay.as_secs_f64() * self.multiplier.powi(exp)", "self.base_delay.as_secs_f64() * (self.multiplier * exp as f64).max(1.0)", CORE),
    ("m7", "a hand-back burns the attempt",
     "crates/store/src/jobs/batch.rs", "                row.state = JobState::Available.as_str();\n                row.refund = 1;", "                row.state = JobState::Available.as_str();\n                row.refund = 0;", CONF),
    ("m8a", "retention: failed jobs are kept only as long as completed ones (SQLite)",
     f"{LITE}/src/jobs/maintenance.rs", "(JobState::Failed, p.failed_after)", "(JobState::Failed, p.completed_after)", CONF),
    ("m8b", "retention: cancelled jobs are kept only as long as completed ones (PostgreSQL)",
     f"{PG}/src/jobs/maintenance.rs", "(JobState::Cancelled, p.failed_after)", "(JobState::Cancelled, p.completed_after)", CONF),
    ("m9a", "claim order ignores priority (SQLite)",
     f"{LITE}/queries/jobs/claim.sql", "    ORDER BY priority DESC, run_at, id\n    LIMIT ?3", "    ORDER BY run_at, id\n    LIMIT ?3", CONF),
    ("m9b", "claim order is by id only (PostgreSQL)",
     f"{PG}/migrations/0002_leases_nodes_unhandled.sql", "        ORDER BY priority DESC, run_at, id\n        LIMIT p_limit", "        ORDER BY id\n        LIMIT p_limit", CONF),
    ("m10", "a restarted node reclaims jobs past max_attempts as available (SQLite)",
     f"{LITE}/queries/nodes/reclaim_jobs.sql", "                 WHEN attempt >= max_attempts THEN 'failed'\n", "", CONF),
    ("m11", "cancel refuses jobs waiting out a backoff (PostgreSQL)",
     f"{PG}/queries/jobs/cancel_waiting.sql", "state IN ('scheduled', 'available', 'retryable')", "state IN ('scheduled', 'available')", CONF),
    ("m12", "a fenced heartbeat no longer stops the handler",
     "crates/runtime/src/context.rs", "        self.cancel.cancel();\n        Err(JobError::permanent(", "        Err(JobError::permanent(", RUNTIME + ["--test", "tests", "--", "fenced_heartbeat"]),
    ("m13", "SQLite's in-process wake-up is gone",
     f"{LITE}/src/jobs/enqueue.rs", "    let mut out: Vec<Notification> = Notification::jobs_in(queues).into_iter().collect();", "    let mut out: Vec<Notification> = Vec::new();\n    let _ = queues;", CONF),
    ("m14", "the cleaner ignores its batch limit (SQLite)",
     f"{LITE}/queries/jobs/delete_finished.sql", "    LIMIT ?4", "    LIMIT -1", CONF),
    ("m15", "the CLI ignores --priority",
     "crates/cli/src/commands/enqueue.rs", "    job.priority = args.priority.unwrap_or(0);", "    job.priority = 0;", CLI),
    # The hardening's own SQL.
    ("h1", "a cancel request is lost when the attempt retries (PostgreSQL)",
     f"{PG}/queries/jobs/finish.sql", "    SET state = CASE WHEN j.cancel_requested AND f.state IN ('available', 'scheduled', 'retryable')\n                     THEN 'cancelled' ELSE f.state END,", "    SET state = f.state,", CONF),
    ("h2", "a cancel request is lost when the job is rescued (SQLite)",
     f"{LITE}/queries/jobs/rescue.sql", "SET state = CASE WHEN cancel_requested = 1 THEN 'cancelled'\n                 WHEN attempt", "SET state = CASE WHEN attempt", CONF),
    ("h3", "the rescuer ignores its own health after an outage (PostgreSQL)",
     f"{PG}/queries/jobs/rescue.sql", "WHERE greatest(n.heartbeat_at, t.healthy_since) + (n.expires_at - n.heartbeat_at) < t.now", "WHERE n.expires_at < t.now", CONF),
    ("h4", "an expired lease is taken at once after an outage (SQLite)",
     f"{LITE}/queries/jobs/rescue.sql", "max(coalesce(j.lease_expires_at, 0), ?2)\n                                + (n.expires_at - n.heartbeat_at) < ?1", "coalesce(j.lease_expires_at, 0) < ?1", CONF),
    ("h17", "a live holder's expired lease is taken as soon as it expires (PostgreSQL)",
     f"{PG}/queries/jobs/rescue.sql", "greatest(j.lease_expires_at, t.healthy_since)\n                            + (n.expires_at - n.heartbeat_at) < t.now", "greatest(j.lease_expires_at, t.healthy_since) < t.now", CONF),
    ("h5", "unhandled jobs stay in the claim order (PostgreSQL)",
     f"{PG}/migrations/0002_leases_nodes_unhandled.sql", "WHERE state = 'available' AND NOT unhandled AND queue = p_queue", "WHERE state = 'available' AND queue = p_queue", CONF),
    ("h6", "jobs of handled kinds are set aside too (SQLite)",
     f"{LITE}/queries/jobs/mark_unhandled.sql", "  AND kind IN (\n    SELECT DISTINCT head.kind", "  AND kind NOT IN (\n    SELECT DISTINCT head.kind", CONF),
    ("h7", "an idempotency key answers with a dedupe twin (SQLite)",
     f"{LITE}/queries/jobs/insert_existing.sql", "ORDER BY coalesce(idempotency_key = ?1, 0) DESC, id", "ORDER BY id", CONF),
    ("h8", "a beat never notices a stall",
     "crates/store/src/nodes.rs", "                if gap > self.stall() {", "                if gap > self.stall() * 1000 {", CONF),
    ("h9", "a node id in use by a live process is taken over",
     "crates/store/src/nodes.rs", "                    && row.expires_at >= now\n", "                    && row.expires_at < now\n", CONF),
    ("h10", "node heartbeats share the main pool again (PostgreSQL)",
     f"{PG}/src/nodes.rs", "            .inner\n            .beat\n            .begin()\n            .await\n            .map_err(db(\"heartbeat_node\"))?;", "            .inner\n            .pool\n            .begin()\n            .await\n            .map_err(db(\"heartbeat_node\"))?;", RUNTIME + ["--test", "tests", "--", "busy_pool"]),
    ("h11", "a claim whose reply was lost is never handed back",
     "crates/runtime/src/heartbeat.rs", "    for lease in again {", "    for lease in again.into_iter().take(0) {", RUNTIME + ["--test", "tests", "--", "reply_was_lost"]),
    ("h12", "a buffered job starts without a fresh lease however long it waited",
     "crates/runtime/src/producer.rs", "            let needs_lease = waited > fresh;", "            let needs_lease = waited > fresh && false;", RUNTIME + ["--test", "tests", "--", "buffer"]),
    ("h14", "a rescue appends to a history that is not a JSON array (SQLite)",
     f"{LITE}/queries/jobs/rescue.sql", "    errors = json_insert(CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors\n", "    errors = json_insert(CASE WHEN 1 THEN errors\n", CONF),
    ("h15", "a finish appends to a history that is not a JSON array (SQLite)",
     f"{LITE}/queries/jobs/finish.sql", "IS NULL THEN j.errors\n             ELSE json_insert(CASE WHEN json_valid(j.errors) AND json_type(j.errors) = 'array' THEN j.errors\n", "IS NULL THEN j.errors\n             ELSE json_insert(CASE WHEN 1 THEN j.errors\n", CONF),
    ("h16", "a cancel keeps a history that is not a JSON array (PostgreSQL)",
     f"{PG}/queries/jobs/cancel_waiting.sql", "    errors = CASE WHEN jsonb_typeof(errors) = 'array' THEN errors\n", "    errors = CASE WHEN true THEN errors\n", CONF),
    ("s1", "a SQLite transaction's commit announces nothing",
     f"{LITE}/src/tx.rs", "Sink::Hub(hub) => self.gathered.into_iter().for_each(|n| hub.send(n)),", "Sink::Hub(hub) => self.gathered.into_iter().take(0).for_each(|n| hub.send(n)),", SEAM),
    ("s2", "a SQLite savepoint's commit loses its notifications",
     f"{LITE}/src/tx.rs", "                for n in self.gathered {", "                for n in self.gathered.into_iter().take(0) {", SEAM),
    ("s3", "promotion sends no NOTIFY (PostgreSQL)",
     f"{PG}/queries/jobs/promote_due.sql", "pg_notify('capstan_jobs'", "pg_notify('capstan_nobody'", SEAM),
    ("s4", "a retry by hand announces nothing (SQLite)",
     f"{LITE}/src/jobs/admin.rs", "            store.announce(Notification::jobs_in([job.queue.as_str()]));", "            let _ = &job;", SEAM),
    ("s5", "the LISTEN connection never listens to the topics asked for (PostgreSQL)",
     f"{PG}/src/listen.rs", "listener.listen_all(channels.iter().map(String::as_str)).await", "listener.listen_all(channels.iter().map(String::as_str).take(0)).await", SEAM),
    ("s6", "a hand-back announces nothing (SQLite)",
     f"{LITE}/src/jobs/finish.rs", "    store.announce(Notification::jobs_in(queues.iter().map(String::as_str)));\n    if p.finishes", "    let _ = &queues;\n    if p.finishes", SEAM),
    ("s7", "the runtime ignores a missed hint",
     "crates/runtime/src/dispatch.rs", "            Some(Received::Missed) => everyone(),", "            Some(Received::Missed) => {}", RUNTIME + ["--test", "tests"]),
    ("p1", "prefetch ignores the lease bound",
     "crates/runtime/src/prefetch.rs", "by_capacity.min(by_lease).min(self.max as f64)", "by_capacity.min(self.max as f64)", RUNTIME + ["--lib", "prefetch"]),
    ("p2", "prefetch holds a full batch ahead whatever the capacity",
     "crates/runtime/src/prefetch.rs", "let ahead = by_capacity.min(by_lease).min(self.max as f64).floor() as usize;", "let ahead = self.max;", RUNTIME + ["--lib", "prefetch"]),
    ("r1", "a producer resumes after its last claim even when its queue rang",
     "crates/runtime/src/producer.rs", "if self.wake.take() || from_head.elapsed() >= RESUME_FOR {", "if { let _ = self.wake.take(); false } || from_head.elapsed() >= RESUME_FOR {", RUNTIME + ["--test", "tests", "--", "higher_priority_job_enqueued_during_a_drain"]),
    ("r2", "PostgreSQL: a resumed claim takes jobs of the key's priority before the key",
     f"{PG}/migrations/0004_claim_after.sql", "AND priority = p_after_priority AND (run_at, id) > (p_after_run_at, p_after_id)", "AND priority = p_after_priority", CONF + ["--test", "tests", "--", "postgres::claim::a_claim_after"]),
    ("r3", "SQLite: a claim ignores the key to resume after",
     "crates/store-sqlite/queries/jobs/claim.sql", "      AND (?11 IS NULL OR priority < ?9 OR (priority = ?9 AND (run_at, id) > (?10, ?11)))\n", "", CONF + ["--test", "tests", "--", "sqlite::claim::a_claim_after"]),
    ("p3", "a slot's hold time is never counted",
     "crates/runtime/src/prefetch.rs", "self.holds.count.fetch_add(1, Ordering::Relaxed);", "", RUNTIME + ["--lib", "prefetch"]),
    ("p4", "a start looks through the whole buffer only on a sweep: never",
     "crates/runtime/src/producer.rs", "_ = sweep.tick(), if !buffer.is_empty() => sweep_due = true,", "_ = sweep.tick(), if !buffer.is_empty() => {}", RUNTIME + ["--test", "tests", "--", "busy_slot"]),
    ("h13", "the completer drops finishes after a few failures",
     "crates/runtime/src/completer.rs", "            failures += 1;\n", "            failures += 1;\n            if failures >= 6 {\n                return (p.finishes, Written::GaveUp(e));\n            }\n", RUNTIME + ["--test", "tests", "--", "blip"]),
]

# Files whose change cargo does not see by itself (sqlx::migrate! embeds the
# migrations): touch the crate's lib.rs so the change is compiled in.
TOUCH = {"migrations": "src/lib.rs"}


def run_tests(args):
    env = dict(os.environ, CARGO_TERM_COLOR="never")
    out = subprocess.run(["cargo", "test", "-q", *args], capture_output=True, text=True, env=env)
    text = out.stdout + out.stderr
    failing = re.findall(r"^test (\S+) \.\.\. FAILED$", text, re.M)
    failing += re.findall(r"^    (\S+)$", text.split("failures:")[-1], re.M) if "failures:" in text else []
    build_error = "error[E" in text or "could not compile" in text
    ran = sum(int(n) + int(f) for n, f in re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", text))
    if ran == 0 and not build_error:
        sys.exit(f"no test ran for cargo test {' '.join(args)}: the filter matches nothing; update the list")
    return out.returncode, failing, build_error, text


def main():
    ids = [a for a in sys.argv[1:] if not a.startswith("-")]
    if "--list" in sys.argv:
        for m in MUTATIONS:
            print(f"{m[0]:5} {m[1]}")
        return
    chosen = [m for m in MUTATIONS if not ids or m[0] in ids]
    for mid, _, path, old, _, _ in chosen:
        if open(path).read().count(old) != 1:
            sys.exit(f"{mid}: the text to mutate is not found exactly once in {path}; update the list")
    rows = []
    for mid, what, path, old, new, args in chosen:
        src = open(path).read()
        open(path, "w").write(src.replace(old, new))
        touched = None
        for part, rel in TOUCH.items():
            if f"/{part}/" in path:
                touched = os.path.join(path.split(f"/{part}/")[0], rel)
                os.utime(touched)
        started = time.time()
        try:
            code, failing, build_error, text = run_tests(args)
        finally:
            open(path, "w").write(src)
            if touched:
                os.utime(touched)
        took = time.time() - started
        os.makedirs("target/mutations", exist_ok=True)
        open(f"target/mutations/{mid}.log", "w").write(text)
        if build_error:
            verdict, by = "build error", ""
        elif code != 0:
            verdict, by = "caught", ", ".join(sorted(set(failing))[:3]) or "(a test failed)"
        else:
            verdict, by = "SURVIVED", ""
        rows.append((mid, what, verdict, by, took))
        print(f"{mid:5} {verdict:9} {took:5.0f}s  {what}  {by}", flush=True)
    caught = sum(1 for r in rows if r[2] == "caught")
    table = ["| # | mutation | caught? | by | s |", "|---|---|---|---|---|"]
    table += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.0f} |" for r in rows]
    table.append(f"\n{caught} of {len(rows)} caught.")
    os.makedirs("target", exist_ok=True)
    open("target/mutations.md", "w").write("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
