// Types of Capstan's Node.js client (see index.js).

/** A duration: "500ms", "30s", "5m", "1h", or milliseconds. */
export type Duration = string | number;

export type JobState =
  | "scheduled" | "available" | "running" | "retryable" | "completed" | "failed" | "cancelled";

export interface AttemptError {
  at: string;
  attempt: number;
  class: "retryable" | "permanent" | "timeout" | "panicked" | "cancelled" | "rescued" | string;
  message: string;
}

export interface Job<Args = unknown, Result = unknown> {
  id: number;
  queue: string;
  kind: string;
  args: Args;
  priority: number;
  state: JobState;
  attempt: number;
  max_attempts: number;
  run_at: string;
  timeout_ms: number | null;
  errors: AttemptError[];
  result: Result | null;
  progress: unknown;
  tags: string[];
  idempotency_key: string | null;
  dedupe_key: string | null;
  created_at: string;
  attempted_at: string | null;
  finished_at: string | null;
  node_id: string | null;
  lease_expires_at: string | null;
  cancel_requested: boolean;
  unhandled: boolean;
}

export interface NewJob<Args = unknown> {
  kind: string;
  args?: Args;
  queue?: string;
  priority?: number;
  run_at?: string;
  delay?: string;
  max_attempts?: number;
  timeout?: string;
  tags?: string[];
  idempotency_key?: string;
  dedupe_key?: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  field?: string;
  retry_after?: number;
}

export class CapstanError extends Error {
  status: number;
  type: string;
  detail: string;
  field?: string;
  problem: Problem;
  /** The problem's slug: "stale-lease", "not-found", "invalid", … */
  readonly kind: string;
}

export class WaitTimeout extends Error {
  job: Job;
}

/** Throw from a handler: the job fails now, without a retry. */
export class PermanentError extends Error {
  constructor(message: string);
}

/** Throw from a handler: the job is retried after exactly `retryAfter`. */
export class RetryAfter extends Error {
  constructor(message: string, retryAfter: Duration);
  retryAfter: string;
}

/** Throw from a handler when an HTTP call of its failed: the status decides,
 * by the push queues' table (429, 5xx, 3xx: retried, after `retryAfter` when
 * given — a Retry-After header's value works as it is; 410 and other 4xx:
 * failed for good), and goes into the attempt history. */
export class HttpStatusError extends Error {
  constructor(status: number, message?: string, retryAfter?: Duration | null);
  status: number;
  retryAfter?: string;
}

export function durationMs(d: Duration): number;

export class Capstan {
  constructor(options?: { url?: string; token?: string });
  url: string;
  request(
    method: string,
    path: string,
    body?: unknown,
    options?: { signal?: AbortSignal; accept?: number[] },
  ): Promise<{ status: number; data: any }>;
  enqueue<Args>(job: NewJob<Args>): Promise<{ existing: boolean; job: Job<Args> }>;
  enqueueMany(jobs: NewJob[]): Promise<{ id: number; state: JobState; existing: boolean }[]>;
  get(id: number): Promise<Job>;
  list(filter?: {
    queue?: string; state?: JobState; kind?: string; tag?: string; limit?: number; cursor?: string;
  }): Promise<{ jobs: Job[]; next_cursor?: string }>;
  wait(id: number, options?: { timeout?: Duration }): Promise<Job>;
  cancel(id: number): Promise<{ outcome: "cancelled" | "requested"; job: Job }>;
  retry(id: number): Promise<Job>;
}

/** A claimed job, as a handler sees it. */
export interface ClaimedJob<Args = unknown> {
  id: number;
  queue: string;
  kind: string;
  args: Args;
  attempt: number;
  max_attempts: number;
  priority: number;
  tags: string[];
  created_at: string;
  timeout_ms: number | null;
  lease: string;
  lease_expires_at: string | null;
}

export interface JobContext {
  job: ClaimedJob;
  /** Aborted when the job is cancelled ("cancelled"), lost to a rescue
   * ("lost"), or the worker stops past its grace ("shutdown"). */
  signal: AbortSignal;
  /** Record progress; it is sent with the next heartbeat. */
  progress(value: unknown): void;
}

export type Handler<Args = any, Result = unknown> = (args: Args, ctx: JobContext) => Promise<Result> | Result;

export interface WorkerOptions {
  queue: string;
  /** One handler per kind; the worker claims only these kinds (unless anyKind). */
  handlers: Record<string, Handler>;
  /** Handlers running at once (default 10). */
  concurrency?: number;
  /** Unique per process (default host-pid-random). */
  name?: string;
  /** Long-poll of an idle claim (default "20s"). */
  wait?: Duration;
  /** Heartbeat of running jobs (default "10s"). */
  heartbeatEvery?: Duration;
  /** On stop, running handlers get this long before they are aborted (default "10s"). */
  shutdownGrace?: Duration;
  /** Claim every kind of the queue (a job without a handler fails permanently). */
  anyKind?: boolean;
  onError?: (e: unknown) => void;
}

export class Worker {
  constructor(client: Capstan, options: WorkerOptions);
  readonly name: string;
  /** Stop on SIGTERM and SIGINT (a second signal exits at once). */
  stopOnSignals(): this;
  stop(): void;
  /** Claim and run jobs until stop(); resolves once every job is finished or given back. */
  run(): Promise<void>;
}
