// The client's calls against a running Capstan server: what an application
// does with it besides running a Worker. Run it against a server of your
// own (it writes jobs to the queue "client-check", kind "client.check",
// which nothing serves):
//
//   CAPSTAN_URL=http://127.0.0.1:7400 CAPSTAN_TOKEN=... node clients/typescript/test/check.mjs
//
// It exits 0 and prints "ok" when every check holds; otherwise it throws.

import assert from "node:assert/strict";
import { Capstan, CapstanError, WaitTimeout, durationMs } from "../src/index.js";

const capstan = new Capstan();
const queue = "client-check";
const key = `check-${process.pid}-${Date.now()}`;

// Enqueue: 201 then, for the same idempotency key, the same job.
const made = await capstan.enqueue({ kind: "client.check", queue, args: { n: 1 }, idempotency_key: key, tags: ["check"] });
assert.equal(made.existing, false);
assert.equal(made.job.state, "available");
const again = await capstan.enqueue({ kind: "client.check", queue, args: { n: 2 }, idempotency_key: key });
assert.deepEqual([again.existing, again.job.id], [true, made.job.id]);

// Many, in one transaction; a bad one refuses them all.
const many = await capstan.enqueueMany([
  { kind: "client.check", queue, args: { n: 3 } },
  { kind: "client.check", queue, args: { n: 4 }, delay: "1h" },
]);
assert.deepEqual(many.map((r) => r.state), ["available", "scheduled"]);
await assert.rejects(
  capstan.enqueueMany([{ kind: "client.check", queue }, { kind: "", queue }]),
  (e) => e instanceof CapstanError && e.status === 422 && e.kind === "invalid" && e.field === "jobs[1].kind",
);

// Read: one job, and the list (newest first, by tag).
const got = await capstan.get(made.job.id);
assert.deepEqual([got.id, got.args], [made.job.id, { n: 1 }]);
const listed = await capstan.list({ queue, tag: "check", limit: 10 });
assert.ok(listed.jobs.some((j) => j.id === made.job.id));
await assert.rejects(capstan.get(987654321), (e) => e instanceof CapstanError && e.status === 404 && e.kind === "not-found");

// Wait: nothing runs these, so a short wait times out with the job as it is.
await assert.rejects(capstan.wait(made.job.id, { timeout: "200ms" }), (e) => e instanceof WaitTimeout && e.job.state === "available");

// Cancel: a waiting job ends cancelled, and a wait answers at once.
const cancelled = await capstan.cancel(made.job.id);
assert.deepEqual([cancelled.outcome, cancelled.job.state], ["cancelled", "cancelled"]);
assert.equal((await capstan.wait(made.job.id, { timeout: "5s" })).state, "cancelled");
// Retry: it is available again.
assert.equal((await capstan.retry(made.job.id)).state, "available");
await capstan.cancel(made.job.id);

assert.equal(durationMs("1.5s"), 1500);
assert.throws(() => durationMs("soon"), TypeError);
console.log("ok");
