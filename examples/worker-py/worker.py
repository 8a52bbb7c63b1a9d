"""A Capstan pull worker in Python, on the client in clients/python.

    pip install ./clients/python         # or run from the repository as is
    capstan serve &                      # the API on 127.0.0.1:7400
    python3 examples/worker-py/worker.py
    curl -s localhost:7400/v1/jobs -H 'content-type: application/json' \\
      -d '{"kind":"demo.echo","args":{"hello":"py"},"queue":"demo"}'

Settings from the environment: CAPSTAN_URL, CAPSTAN_TOKEN, QUEUE (demo),
CONCURRENCY (8), HEARTBEAT (10s), SHUTDOWN_GRACE (10s). It stops cleanly on SIGTERM or ctrl-c.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python"))

from capstan_client import Client, HttpStatusError, JobContext, PermanentError, RetryAfter, Worker  # noqa: E402


def echo(args, ctx: JobContext):
    """Returns its args, after `ms` milliseconds of (cancellable) work."""
    ms = (args or {}).get("ms")
    if ms:
        ctx.progress({"sleeping": ms})
        if ctx.stopped.wait(ms / 1000.0):
            raise RuntimeError(f"stopped: {ctx.reason}")
    return {"echo": args, "by": worker.name, "lang": "py"}


def big(args, ctx: JobContext):
    """Returns a result of `bytes` bytes (over the server's 1 MiB limit, its
    job fails alone, saying why)."""
    return {"blob": "x" * (args or {}).get("bytes", 0)}


def fail(args, ctx: JobContext):
    """Fails: as an HTTP status says, permanently, after a delay, or with the queue's backoff."""
    args = args or {}
    if args.get("status"):
        # As after an HTTP call that got this status (and Retry-After).
        raise HttpStatusError(args["status"], args.get("message"), args.get("retry_after"))
    if args.get("permanent"):
        raise PermanentError(args.get("message", "asked to fail"))
    if args.get("retry_after"):
        raise RetryAfter(args.get("message", "asked to retry"), args["retry_after"])
    raise RuntimeError(args.get("message", "asked to fail"))


worker = Worker(
    Client(),
    queue=os.environ.get("QUEUE", "demo"),
    handlers={"demo.echo": echo, "demo.big": big, "demo.fail": fail},
    concurrency=int(os.environ.get("CONCURRENCY", "8")),
    heartbeat_every=os.environ.get("HEARTBEAT", "10s"),
    shutdown_grace=os.environ.get("SHUTDOWN_GRACE", "10s"),
)

if __name__ == "__main__":
    print(f"worker {worker.name} on queue {worker.queue}", flush=True)
    worker.run()
    print(f"worker {worker.name} stopped", flush=True)
