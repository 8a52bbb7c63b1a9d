// Capstan's client for Node.js (>= 18): enqueue and inspect jobs, and run
// pull workers, over Capstan's HTTP API. ESM, typed (index.d.ts), no
// dependencies: Node's own fetch.
//
// A Worker claims jobs in batches (long-polling when none is there), runs
// their handlers with a concurrency limit, heartbeats every running job,
// completes them in batches, fails them with the error's class, and on
// stop() (or SIGTERM/SIGINT with stopOnSignals) claims no more, lets
// running handlers finish within a grace period, then aborts them and
// gives their jobs back to the queue.

import { hostname } from "node:os";

/** An error answered by the API: an RFC 9457 problem detail. */
export class CapstanError extends Error {
  constructor(problem, status) {
    super(`${problem.title ?? "error"} (${status}): ${problem.detail ?? ""}`);
    this.name = "CapstanError";
    this.status = status;
    this.type = problem.type;
    this.detail = problem.detail;
    this.field = problem.field;
    this.problem = problem;
  }
  /** The problem's slug: `stale-lease`, `not-found`, `invalid`, … */
  get kind() {
    return String(this.type ?? "").replace("urn:capstan:problem:", "");
  }
}

/** A job that did not finish within a wait; `job` is as it was then. */
export class WaitTimeout extends Error {
  constructor(job) {
    super(`job ${job.id} did not finish in time (it is ${job.state})`);
    this.name = "WaitTimeout";
    this.job = job;
  }
}

/** Throw from a handler: the job fails now, without a retry. */
export class PermanentError extends Error {
  constructor(message) {
    super(message);
    this.name = "PermanentError";
  }
}

/** Throw from a handler: the job is retried after exactly `retryAfter`
 * (`"30s"`, or milliseconds), e.g. from an HTTP 429's Retry-After. */
export class RetryAfter extends Error {
  constructor(message, retryAfter) {
    super(message);
    this.name = "RetryAfter";
    this.retryAfter = typeof retryAfter === "number" ? `${Math.ceil(retryAfter)}ms` : retryAfter;
  }
}

/** Throw from a handler when an HTTP call of its failed: the status decides,
 * by the table push queues follow (429, 502, 503, 504 and other 5xx or 3xx:
 * retried, after `retryAfter` when given — a `Retry-After` header's value
 * works as it is; 410 and other 4xx: failed for good), and goes into the
 * attempt history. */
export class HttpStatusError extends Error {
  constructor(status, message, retryAfter) {
    super(message ?? `HTTP ${status}`);
    this.name = "HttpStatusError";
    this.status = status;
    this.retryAfter = retryAfterOf(retryAfter);
  }
}

/** A duration for the API from milliseconds, a `Retry-After` header's
 * value (seconds, or an HTTP date), or a duration string ("30s");
 * undefined for what is none of these. */
function retryAfterOf(v) {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v === "number") return `${Math.max(0, Math.ceil(v))}ms`;
  const text = String(v).trim();
  if (/^\d+(\.\d+)?$/.test(text)) return `${Math.ceil(Number(text) * 1000)}ms`;
  try {
    durationMs(text);
    return text;
  } catch {
    const at = Date.parse(text);
    return Number.isNaN(at) ? undefined : `${Math.max(0, at - Date.now())}ms`;
  }
}

/** A client of one Capstan server. */
export class Capstan {
  /** @param {{url?: string, token?: string}} [options] */
  constructor(options = {}) {
    this.url = (options.url ?? process.env.CAPSTAN_URL ?? "http://127.0.0.1:7400").replace(/\/+$/, "");
    this.token = options.token ?? process.env.CAPSTAN_TOKEN;
  }

  /** One request; a problem answer throws CapstanError. `accept` lists
   * statuses whose body is returned as is (e.g. 408 for wait). */
  async request(method, path, body, { signal, accept = [] } = {}) {
    const headers = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const res = await fetch(this.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      // Not Capstan's answer: a proxy's error page, say.
      throw new CapstanError({ detail: text.slice(0, 500) }, res.status);
    }
    if (res.ok || accept.includes(res.status)) return { status: res.status, data };
    throw new CapstanError(data !== null && typeof data === "object" ? data : { detail: text }, res.status);
  }

  /** Enqueue one job: `{existing, job}`. */
  async enqueue(job) {
    return (await this.request("POST", "/v1/jobs", job)).data;
  }

  /** Enqueue many jobs in one transaction (all or none). */
  async enqueueMany(jobs) {
    return (await this.request("POST", "/v1/jobs", { jobs })).data.jobs;
  }

  /** One job, with its attempt history. */
  async get(id) {
    return (await this.request("GET", `/v1/jobs/${id}`)).data;
  }

  /** Jobs newest first: `{jobs, next_cursor}`. */
  async list(filter = {}) {
    const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined));
    return (await this.request("GET", `/v1/jobs?${q}`)).data;
  }

  /** Wait until the job is completed, failed or cancelled (any node may
   * finish it); throws WaitTimeout after `timeout` (default "30s"; longer
   * waits poll again). */
  async wait(id, { timeout = "30s" } = {}) {
    const ms = durationMs(timeout);
    const deadline = Date.now() + ms;
    for (;;) {
      const left = Math.max(1, Math.min(deadline - Date.now(), 30_000));
      const { status, data } = await this.request("GET", `/v1/jobs/${id}/wait?timeout=${left}ms`, undefined, {
        accept: [408],
      });
      if (status !== 408) return data;
      if (Date.now() >= deadline) throw new WaitTimeout(data);
    }
  }

  /** Cancel a job: `{outcome: "cancelled" | "requested", job}`. */
  async cancel(id) {
    return (await this.request("POST", `/v1/jobs/${id}/cancel`, {})).data;
  }

  /** Run a job again now. */
  async retry(id) {
    return (await this.request("POST", `/v1/jobs/${id}/retry`, {})).data;
  }
}

/** Milliseconds of `"500ms"`, `"30s"`, `"5m"`, `"1h"`, or a number. */
export function durationMs(d) {
  if (typeof d === "number") return d;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(String(d).trim());
  if (!m) throw new TypeError(`not a duration: ${d} (write it like 500ms, 30s, 5m)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2]];
}

/** Whether `promise` settles within `ms` (its timer cleared either way,
 * so that it does not hold the process open). */
async function within(promise, ms) {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/** A pull worker of one queue. */
export class Worker {
  /**
   * @param {Capstan} client
   * @param {object} options see index.d.ts
   */
  constructor(client, options) {
    if (!options?.queue) throw new TypeError("a Worker needs a queue");
    if (!options.handlers || Object.keys(options.handlers).length === 0) {
      throw new TypeError("a Worker needs at least one handler");
    }
    this.client = client;
    this.queue = options.queue;
    this.handlers = options.handlers;
    this.concurrency = options.concurrency ?? 10;
    this.name = options.name ?? `${hostname()}-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
    this.wait = options.wait ?? "20s";
    this.heartbeatMs = durationMs(options.heartbeatEvery ?? "10s");
    this.graceMs = durationMs(options.shutdownGrace ?? "10s");
    this.anyKind = options.anyKind ?? false;
    this.onError = options.onError ?? ((e) => console.error(`capstan worker ${this.name}:`, e));
    /** @type {Map<number, {job: any, controller: AbortController, done: Promise<void>}>} */
    this.running = new Map();
    this.completions = [];
    this.stopping = new AbortController();
    this.drained = new AbortController();
    this.flushing = null;
    this.slotFreed = null;
  }

  /** Stop on SIGTERM and SIGINT (a second signal exits at once). */
  stopOnSignals() {
    let seen = 0;
    const onSignal = () => {
      seen += 1;
      if (seen > 1) process.exit(130);
      this.stop();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    return this;
  }

  /** Ask the worker to stop; `run()` resolves once it has. */
  stop() {
    this.stopping.abort();
    // run() may be waiting for a free slot: wake it, so that it drains.
    this.slotFreed?.();
    this.slotFreed = null;
  }

  /** Claim and run jobs until stop(). */
  async run() {
    const beat = this.#heartbeats();
    let pause = 100;
    while (!this.stopping.signal.aborted) {
      const free = this.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise((resolve) => (this.slotFreed = resolve));
        continue;
      }
      let jobs;
      try {
        const body = { worker: this.name, max: free, wait: this.running.size > 0 ? "1s" : this.wait };
        if (!this.anyKind) body.kinds = Object.keys(this.handlers);
        jobs = (await this.client.request("POST", `/v1/queues/${encodeURIComponent(this.queue)}/claim`, body, {
          signal: this.stopping.signal,
        })).data.jobs;
        pause = 100;
      } catch (e) {
        if (this.stopping.signal.aborted) break;
        this.onError(e);
        await sleep(pause, this.stopping.signal);
        pause = Math.min(pause * 2, 5000);
        continue;
      }
      for (const job of jobs) this.#start(job);
    }
    await this.#drain();
    this.stopped = true;
    this.drained.abort();
    await beat;
  }

  #start(job) {
    const controller = new AbortController();
    const entry = { job, controller, progress: undefined };
    const ctx = {
      job,
      signal: controller.signal,
      /** Record progress (sent with the next heartbeat). */
      progress: (value) => {
        entry.progress = value;
      },
    };
    entry.done = (async () => {
      const handler = this.handlers[job.kind];
      try {
        if (!handler) throw new PermanentError(`this worker has no handler for kind ${job.kind}`);
        const result = await handler(job.args, ctx);
        if (controller.signal.aborted && controller.signal.reason === "lost") return;
        // A result that cannot be sent fails its job now, rather than every
        // completion batch it would join.
        try {
          JSON.stringify(result ?? null);
        } catch (e) {
          throw new PermanentError(`the handler's result is not JSON: ${e?.message ?? e}`);
        }
        this.completions.push({ id: job.id, lease: job.lease, result: result ?? null });
        this.#flush();
      } catch (e) {
        await this.#fail(job, e, controller.signal);
      } finally {
        // (Only this run's entry: the job may have been claimed again
        // meanwhile, after its lease ran out.)
        if (this.running.get(job.id) === entry) this.running.delete(job.id);
        this.slotFreed?.();
        this.slotFreed = null;
      }
    })();
    this.running.set(job.id, entry);
  }

  async #fail(job, e, signal) {
    if (signal.aborted && signal.reason === "lost") return; // no longer ours
    if (signal.aborted && signal.reason === "shutdown") {
      await this.#release(job);
      return;
    }
    const body = { lease: job.lease, error: String(e?.message ?? e), permanent: e instanceof PermanentError };
    if (e instanceof RetryAfter && e.retryAfter) body.retry_after = e.retryAfter;
    if (e instanceof HttpStatusError) {
      body.status = e.status;
      if (e.retryAfter) body.retry_after = e.retryAfter;
    }
    await this.#failWith(job, body);
  }

  async #failWith(job, body) {
    try {
      await this.client.request("POST", `/v1/jobs/${job.id}/fail`, body);
    } catch (err) {
      if (err instanceof CapstanError && err.status === 422 && ["status", "retry_after"].includes(err.field)) {
        // A status or Retry-After the server does not take: the failure
        // itself still counts, without it.
        this.onError(err);
        const { [err.field]: _, ...rest } = body;
        await this.#failWith(job, rest);
      } else if (!(err instanceof CapstanError && err.status === 409)) {
        this.onError(err);
      }
    }
  }

  async #release(job) {
    try {
      await this.client.request("POST", `/v1/jobs/${job.id}/release`, { lease: job.lease });
    } catch (err) {
      if (!(err instanceof CapstanError && err.status === 409)) this.onError(err);
    }
  }

  /** Send the completions gathered so far, one batch at a time. A batch
   * the server refuses (a result over its limit, a body too large) is sent
   * job by job, so one bad result fails its own job and no other; a batch
   * that does not get through (network, 5xx) is tried again, until
   * `flushUntil` once the worker stops (then its jobs are rescued and run
   * again, as after a crash). */
  #flush() {
    if (this.flushing) return this.flushing;
    this.flushing = (async () => {
      while (this.completions.length > 0) {
        const batch = this.completions.splice(0, 1000);
        try {
          await this.client.request("POST", "/v1/complete", { jobs: batch });
        } catch (e) {
          if (refused(e)) {
            // (What could not be sent even alone is back in completions.)
            if (!(await this.#completeEach(batch))) continue;
          } else {
            this.onError(e);
            this.completions.unshift(...batch);
          }
          if (this.flushUntil !== undefined && Date.now() >= this.flushUntil) {
            const n = this.completions.splice(0).length;
            this.onError(new Error(`${n} completions could not be sent before the worker stopped; their jobs will be rescued and run again`));
            break;
          }
          await sleep(500);
        }
      }
      this.flushing = null;
    })();
    return this.flushing;
  }

  /** Complete one at a time; a completion the server refuses fails its
   * job. Whether some could not be sent (they are back in completions). */
  async #completeEach(batch) {
    let again = false;
    for (const c of batch) {
      try {
        await this.client.request("POST", `/v1/jobs/${c.id}/complete`, { lease: c.lease, result: c.result });
      } catch (e) {
        if (e instanceof CapstanError && e.status === 409) continue; // no longer ours
        if (!refused(e)) {
          this.completions.push(c);
          again = true;
          continue;
        }
        const error = `the server refused the job's result (${e.status}): ${e.detail ?? e.message}`;
        await this.#failWith(c, { lease: c.lease, error, permanent: true });
      }
    }
    return again;
  }

  /** Heartbeat every running job until the worker has stopped. */
  async #heartbeats() {
    while (!this.stopped) {
      await sleep(this.heartbeatMs, this.stopping.signal);
      // While the worker drains, beats go on, at least every second.
      if (this.stopping.signal.aborted) await sleep(Math.min(this.heartbeatMs, 1000), this.drained.signal);
      if (this.stopped) break;
      if (this.running.size === 0) continue;
      const entries = [...this.running.values()];
      const jobs = entries.map((e) => {
        const item = { id: e.job.id, lease: e.job.lease };
        if (e.progress !== undefined) item.progress = e.progress;
        return item;
      });
      try {
        const reply = (await this.client.request("POST", "/v1/heartbeat", { worker: this.name, jobs })).data;
        for (const [i, outcome] of reply.jobs.entries()) {
          const entry = entries[i];
          if (outcome.status === "fenced") entry.controller.abort("lost");
          else if (outcome.cancel_requested) entry.controller.abort("cancelled");
        }
      } catch (e) {
        this.onError(e);
      }
    }
  }

  /** Let running handlers finish within the grace, abort the rest (their
   * jobs are given back), and send every completion. */
  async #drain() {
    const all = () => Promise.all([...this.running.values()].map((e) => e.done));
    const graced = await within(all(), this.graceMs);
    if (!graced) {
      for (const e of this.running.values()) e.controller.abort("shutdown");
      // A handler that ignores its signal is left behind: its job goes
      // back to the queue all the same.
      const settled = await within(all(), 5000);
      if (!settled) await Promise.all([...this.running.values()].map((e) => this.#release(e.job)));
    }
    this.flushUntil = Date.now() + this.graceMs;
    await this.#flush();
  }
}

/** A refusal of the request itself, which sending it again cannot change:
 * a 4xx but 401/403 (the token: fixable by the operator, so tried again),
 * 408 and 429 (a timeout, a rate limit). */
function refused(e) {
  return e instanceof CapstanError && e.status >= 400 && e.status < 500 && ![401, 403, 408, 429].includes(e.status);
}
