// A Capstan pull worker in Node.js, on the client in clients/typescript.
//
//   capstan serve &                    # the API on 127.0.0.1:7400
//   node examples/worker-ts/worker.mjs
//   curl -s localhost:7400/v1/jobs -H 'content-type: application/json' \
//     -d '{"kind":"demo.echo","args":{"hello":"ts"},"queue":"demo"}'
//
// Settings from the environment: CAPSTAN_URL, CAPSTAN_TOKEN, QUEUE (demo),
// CONCURRENCY (8), HEARTBEAT (10s), SHUTDOWN_GRACE (10s). It stops cleanly on SIGTERM or ctrl-c.

import { Capstan, HttpStatusError, PermanentError, RetryAfter, Worker } from "../../clients/typescript/src/index.js";

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(new Error(`stopped: ${signal.reason}`));
    }, { once: true });
  });

const handlers = {
  // Returns its args, after `ms` milliseconds of (cancellable) work.
  "demo.echo": async (args, ctx) => {
    if (args?.ms) {
      ctx.progress({ sleeping: args.ms });
      await sleep(args.ms, ctx.signal);
    }
    return { echo: args, by: worker.name, lang: "ts" };
  },
  // Returns a result of `bytes` bytes (over the server's 1 MiB limit, its
  // job fails alone, saying why).
  "demo.big": async (args) => ({ blob: "x".repeat(args?.bytes ?? 0) }),
  // Fails: as an HTTP status says, permanently, after a delay, or with the
  // queue's backoff.
  "demo.fail": async (args) => {
    // As after an HTTP call that got this status (and Retry-After).
    if (args?.status) throw new HttpStatusError(args.status, args.message, args.retry_after);
    if (args?.permanent) throw new PermanentError(args.message ?? "asked to fail");
    if (args?.retry_after) throw new RetryAfter(args.message ?? "asked to retry", args.retry_after);
    throw new Error(args?.message ?? "asked to fail");
  },
};

const worker = new Worker(new Capstan(), {
  queue: process.env.QUEUE ?? "demo",
  concurrency: Number(process.env.CONCURRENCY ?? 8),
  heartbeatEvery: process.env.HEARTBEAT ?? "10s",
  shutdownGrace: process.env.SHUTDOWN_GRACE ?? "10s",
  handlers,
}).stopOnSignals();

console.log(`worker ${worker.name} on queue ${worker.queue}`);
await worker.run();
console.log(`worker ${worker.name} stopped`);
