"""Capstan's client for Python: enqueue and inspect jobs, and run pull
workers, over Capstan's HTTP API. Standard library only (urllib, threads).

A Worker claims jobs in batches (long-polling when none is there), runs
their handlers on a pool of threads, heartbeats every running job, completes
them in batches, fails them with the error's class, and on stop() (or
SIGTERM/SIGINT, when run() is called from the main thread) claims no more,
lets running handlers finish within a grace period, and gives back the jobs
of those that do not.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

__all__ = [
    "Client",
    "Worker",
    "JobContext",
    "CapstanError",
    "WaitTimeout",
    "PermanentError",
    "RetryAfter",
    "duration_ms",
]

Duration = Union[str, int, float]


class CapstanError(Exception):
    """An error answered by the API: an RFC 9457 problem detail."""

    def __init__(self, problem: Mapping[str, Any], status: int) -> None:
        super().__init__(f"{problem.get('title', 'error')} ({status}): {problem.get('detail', '')}")
        self.status = status
        self.problem = dict(problem)
        self.type: str = problem.get("type", "")
        self.detail: str = problem.get("detail", "")
        self.field: Optional[str] = problem.get("field")

    @property
    def kind(self) -> str:
        """The problem's slug: ``stale-lease``, ``not-found``, ``invalid``, …"""
        return self.type.replace("urn:capstan:problem:", "")


class WaitTimeout(Exception):
    """A job that did not finish within a wait; ``job`` is as it was then."""

    def __init__(self, job: Dict[str, Any]) -> None:
        super().__init__(f"job {job.get('id')} did not finish in time (it is {job.get('state')})")
        self.job = job


class PermanentError(Exception):
    """Raise from a handler: the job fails now, without a retry."""


class RetryAfter(Exception):
    """Raise from a handler: the job is retried after exactly ``retry_after``."""

    def __init__(self, message: str, retry_after: Duration) -> None:
        super().__init__(message)
        self.retry_after = f"{int(retry_after * 1000)}ms" if isinstance(retry_after, (int, float)) else retry_after


def duration_ms(d: Duration) -> float:
    """Milliseconds of ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``, or seconds as a number."""
    if isinstance(d, (int, float)):
        return float(d) * 1000.0
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", d)
    if not m:
        raise ValueError(f"not a duration: {d!r} (write it like 500ms, 30s, 5m)")
    return float(m.group(1)) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[m.group(2)]


class Client:
    """A client of one Capstan server."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, timeout: float = 70.0) -> None:
        self.url = (url or os.environ.get("CAPSTAN_URL") or "http://127.0.0.1:7400").rstrip("/")
        self.token = token or os.environ.get("CAPSTAN_TOKEN")
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, accept: tuple = ()) -> tuple:
        """One request: ``(status, data)``; a problem answer raises CapstanError."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("accept", "application/json")
        if data is not None:
            req.add_header("content-type", "application/json")
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                text = res.read()
                return res.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read()
            parsed = json.loads(text) if text else {}
            if e.code in accept:
                return e.code, parsed
            raise CapstanError(parsed if isinstance(parsed, dict) else {"detail": str(parsed)}, e.code) from None

    def enqueue(self, kind: str, args: Any = None, **options: Any) -> Dict[str, Any]:
        """Enqueue one job: ``{"existing": bool, "job": {...}}``. Options: queue,
        priority, run_at, delay ("30s"), max_attempts, timeout, tags,
        idempotency_key, dedupe_key."""
        return self.request("POST", "/v1/jobs", {"kind": kind, "args": args, **options})[1]

    def enqueue_many(self, jobs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Enqueue many jobs in one transaction (all or none)."""
        return self.request("POST", "/v1/jobs", {"jobs": jobs})[1]["jobs"]

    def get(self, job_id: int) -> Dict[str, Any]:
        """One job, with its attempt history."""
        return self.request("GET", f"/v1/jobs/{job_id}")[1]

    def list(self, **filters: Any) -> Dict[str, Any]:
        """Jobs newest first: ``{"jobs": [...], "next_cursor": ...}``."""
        q = urllib.parse.urlencode({k: v for k, v in filters.items() if v is not None})
        return self.request("GET", f"/v1/jobs?{q}")[1]

    def wait(self, job_id: int, timeout: Duration = "30s") -> Dict[str, Any]:
        """Wait until the job is completed, failed or cancelled (any node may
        finish it); raises WaitTimeout after ``timeout``."""
        deadline = time.monotonic() + duration_ms(timeout) / 1000.0
        while True:
            left = max(1, int(min(deadline - time.monotonic(), 30.0) * 1000))
            status, job = self.request("GET", f"/v1/jobs/{job_id}/wait?timeout={left}ms", accept=(408,))
            if status != 408:
                return job
            if time.monotonic() >= deadline:
                raise WaitTimeout(job)

    def cancel(self, job_id: int) -> Dict[str, Any]:
        """Cancel a job: ``{"outcome": "cancelled" | "requested", "job": {...}}``."""
        return self.request("POST", f"/v1/jobs/{job_id}/cancel", {})[1]

    def retry(self, job_id: int) -> Dict[str, Any]:
        """Run a job again now."""
        return self.request("POST", f"/v1/jobs/{job_id}/retry", {})[1]


@dataclass
class JobContext:
    """What a handler gets beside its args."""

    job: Dict[str, Any]
    #: Set when the job is cancelled, lost to a rescue, or the worker stops
    #: past its grace; ``reason`` says which.
    stopped: threading.Event = field(default_factory=threading.Event)
    reason: Optional[str] = None
    _progress: Any = None
    _has_progress: bool = False

    def progress(self, value: Any) -> None:
        """Record progress; it is sent with the next heartbeat."""
        self._progress = value
        self._has_progress = True

    def _stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.stopped.set()


Handler = Callable[[Any, JobContext], Any]


class Worker:
    """A pull worker of one queue."""

    def __init__(
        self,
        client: Client,
        queue: str,
        handlers: Mapping[str, Handler],
        concurrency: int = 10,
        name: Optional[str] = None,
        wait: str = "20s",
        heartbeat_every: Duration = "10s",
        shutdown_grace: Duration = "10s",
        any_kind: bool = False,
        on_error: Optional[Callable[[BaseException], None]] = None,
    ) -> None:
        if not handlers:
            raise ValueError("a Worker needs at least one handler")
        self.client = client
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{random.getrandbits(24):06x}"
        self.wait = wait
        self.heartbeat_s = duration_ms(heartbeat_every) / 1000.0
        self.grace_s = duration_ms(shutdown_grace) / 1000.0
        self.any_kind = any_kind
        self.on_error = on_error or (lambda e: print(f"capstan worker {self.name}: {e!r}", flush=True))
        self._running: Dict[int, JobContext] = {}
        self._lock = threading.Lock()
        self._slot = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._completions: List[Dict[str, Any]] = []
        self._completions_ready = threading.Condition(threading.Lock())
        self._flush_until: Optional[float] = None

    def stop(self) -> None:
        """Ask the worker to stop; run() returns once it has."""
        self._stopping.set()
        with self._slot:
            self._slot.notify_all()
        with self._completions_ready:
            self._completions_ready.notify_all()

    def run(self) -> None:
        """Claim and run jobs until stop() (or SIGTERM/SIGINT, from the main thread)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="capstan-job")
        beat = threading.Thread(target=self._heartbeats, name="capstan-heartbeat", daemon=True)
        flush = threading.Thread(target=self._flusher, name="capstan-complete", daemon=True)
        beat.start()
        flush.start()
        pause = 0.1
        while not self._stopping.is_set():
            with self._slot:
                while len(self._running) >= self.concurrency and not self._stopping.is_set():
                    self._slot.wait()
                free = self.concurrency - len(self._running)
                busy = len(self._running) > 0
            if self._stopping.is_set():
                break
            # A short wait while handlers run, so the claim returns to take
            # freed slots; a long one when idle. Either way the server
            # answers at once when jobs come.
            body: Dict[str, Any] = {"worker": self.name, "max": free, "wait": "1s" if busy else self.wait}
            if not self.any_kind:
                body["kinds"] = list(self.handlers)
            try:
                _, reply = self.client.request("POST", f"/v1/queues/{urllib.parse.quote(self.queue)}/claim", body)
                pause = 0.1
            except Exception as e:  # noqa: BLE001 - keep working through outages
                if self._stopping.is_set():
                    break
                self.on_error(e)
                self._stopping.wait(pause)
                pause = min(pause * 2, 5.0)
                continue
            for job in reply["jobs"]:
                ctx = JobContext(job=job)
                with self._lock:
                    self._running[job["id"]] = ctx
                pool.submit(self._run_one, ctx)
        self._drain()
        pool.shutdown(wait=False)
        self._flush_until = time.monotonic() + self.grace_s
        with self._completions_ready:
            self._completions_ready.notify_all()
        flush.join(timeout=self.grace_s + 2.0)

    def _run_one(self, ctx: JobContext) -> None:
        job = ctx.job
        try:
            handler = self.handlers.get(job["kind"])
            if handler is None:
                raise PermanentError(f"this worker has no handler for kind {job['kind']}")
            result = handler(job["args"], ctx)
            if ctx.reason == "lost":
                return
            # A result that cannot be sent fails its job now, rather than
            # every completion batch it would join.
            try:
                json.dumps(result)
            except (TypeError, ValueError) as e:
                raise PermanentError(f"the handler's result is not JSON: {e}") from None
            with self._completions_ready:
                self._completions.append({"id": job["id"], "lease": job["lease"], "result": result})
                self._completions_ready.notify_all()
        except BaseException as e:  # noqa: BLE001 - a handler's error fails its job
            self._fail(ctx, e)
        finally:
            with self._slot:
                self._running.pop(job["id"], None)
                self._slot.notify_all()

    def _fail(self, ctx: JobContext, e: BaseException) -> None:
        job = ctx.job
        if ctx.reason == "lost":
            return
        if ctx.reason == "shutdown":
            self._release(job)
            return
        body: Dict[str, Any] = {"lease": job["lease"], "error": str(e) or type(e).__name__,
                                "permanent": isinstance(e, PermanentError)}
        if isinstance(e, RetryAfter):
            body["retry_after"] = e.retry_after
        try:
            self.client.request("POST", f"/v1/jobs/{job['id']}/fail", body)
        except CapstanError as err:
            if err.status != 409:
                self.on_error(err)
        except Exception as err:  # noqa: BLE001
            self.on_error(err)

    def _release(self, job: Dict[str, Any]) -> None:
        try:
            self.client.request("POST", f"/v1/jobs/{job['id']}/release", {"lease": job["lease"]})
        except CapstanError as err:
            if err.status != 409:
                self.on_error(err)
        except Exception as err:  # noqa: BLE001
            self.on_error(err)

    def _flusher(self) -> None:
        """Send completions in batches, one request at a time, until stopped and empty.

        A batch the server refuses (a result over its limit, a body too
        large) is sent job by job, so one bad result fails its own job and
        no other; a batch that does not get through (network, 5xx) is tried
        again, until the grace after the drain is over (then its jobs are
        rescued and run again, as after a crash)."""
        while True:
            with self._completions_ready:
                while not self._completions and not (self._stopping.is_set() and not self._running):
                    self._completions_ready.wait(0.5)
                batch, self._completions = self._completions[:1000], self._completions[1000:]
            if not batch:
                if self._stopping.is_set() and not self._running:
                    return
                continue
            try:
                self.client.request("POST", "/v1/complete", {"jobs": batch})
            except Exception as e:  # noqa: BLE001
                if _refused(e):
                    self._complete_each(batch)
                    continue
                self.on_error(e)
                with self._completions_ready:
                    self._completions = batch + self._completions
                    if self._flush_until is not None and time.monotonic() >= self._flush_until:
                        n, self._completions = len(self._completions), []
                        self.on_error(RuntimeError(
                            f"{n} completions could not be sent before the worker stopped; "
                            "their jobs will be rescued and run again"))
                        return
                time.sleep(0.5)

    def _complete_each(self, batch: List[Dict[str, Any]]) -> None:
        """Complete one at a time; a completion the server refuses fails its job."""
        for c in batch:
            try:
                self.client.request("POST", f"/v1/jobs/{c['id']}/complete",
                                    {"lease": c["lease"], "result": c["result"]})
            except Exception as e:  # noqa: BLE001
                if isinstance(e, CapstanError) and e.status == 409:
                    continue  # no longer ours
                if not _refused(e):
                    with self._completions_ready:
                        self._completions.append(c)
                    continue
                error = f"the server refused the job's result ({e.status}): {e.detail or e}"
                try:
                    self.client.request("POST", f"/v1/jobs/{c['id']}/fail",
                                        {"lease": c["lease"], "error": error, "permanent": True})
                except CapstanError as err:
                    if err.status != 409:
                        self.on_error(err)
                except Exception as err:  # noqa: BLE001
                    self.on_error(err)

    def _heartbeats(self) -> None:
        while True:
            self._stopping.wait(self.heartbeat_s)
            if self._stopping.is_set():
                time.sleep(min(self.heartbeat_s, 1.0))
            with self._lock:
                running = list(self._running.values())
            if not running:
                if self._stopping.is_set():
                    return
                continue
            jobs = []
            for ctx in running:
                item: Dict[str, Any] = {"id": ctx.job["id"], "lease": ctx.job["lease"]}
                if ctx._has_progress:
                    item["progress"] = ctx._progress
                jobs.append(item)
            try:
                _, reply = self.client.request("POST", "/v1/heartbeat", {"worker": self.name, "jobs": jobs})
                for ctx, outcome in zip(running, reply["jobs"]):
                    if outcome["status"] == "fenced":
                        ctx._stop("lost")
                    elif outcome.get("cancel_requested"):
                        ctx._stop("cancelled")
            except Exception as e:  # noqa: BLE001
                self.on_error(e)

    def _drain(self) -> None:
        deadline = time.monotonic() + self.grace_s
        with self._slot:
            while self._running and time.monotonic() < deadline:
                self._slot.wait(deadline - time.monotonic())
            left = list(self._running.values())
        for ctx in left:
            ctx._stop("shutdown")
        # Handlers that honour `stopped` release their own jobs; the rest
        # are given back after a little longer.
        deadline = time.monotonic() + 5.0
        with self._slot:
            while self._running and time.monotonic() < deadline:
                self._slot.wait(deadline - time.monotonic())
            left = list(self._running.values())
        for ctx in left:
            self._release(ctx.job)
        with self._completions_ready:
            self._completions_ready.notify_all()


def _refused(e: BaseException) -> bool:
    """A refusal of the request itself, which sending it again cannot change:
    a 4xx but 401/403 (the token: fixable by the operator, so tried again),
    408 and 429 (a timeout, a rate limit)."""
    return isinstance(e, CapstanError) and 400 <= e.status < 500 and e.status not in (401, 403, 408, 429)
