"""Capstan's client for Python: enqueue and inspect jobs, and run pull
workers, over Capstan's HTTP API. Standard library only (http.client, threads).

A Worker claims jobs in batches (long-polling when none is there), runs
their handlers on a pool of threads, heartbeats every running job, completes
them in batches, fails them with the error's class, and on stop() (or
SIGTERM/SIGINT, when run() is called from the main thread) claims no more,
lets running handlers finish within a grace period, and gives back the jobs
of those that do not.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import queue as _queue
import random
import re
import select
import signal
import socket
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

__all__ = [
    "Client",
    "Worker",
    "JobContext",
    "CapstanError",
    "WaitTimeout",
    "PermanentError",
    "RetryAfter",
    "HttpStatusError",
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


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the other end closed an idle connection (it is readable: an
    end of file, or bytes nobody asked for)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class HttpStatusError(Exception):
    """Raise from a handler when an HTTP call of its failed: the status
    decides, by the table push queues follow (429, 502, 503, 504 and other
    5xx or 3xx: retried, after ``retry_after`` when given — a Retry-After
    header's value works as it is; 410 and other 4xx: failed for good), and
    goes into the attempt history."""

    def __init__(self, status: int, message: Optional[str] = None, retry_after: Optional[Duration] = None) -> None:
        super().__init__(message or f"HTTP {status}")
        self.status = status
        self.retry_after = _retry_after_of(retry_after)


def _retry_after_of(v: Optional[Duration]) -> Optional[str]:
    """A duration for the API from seconds (a number, or a Retry-After
    header's value: seconds or an HTTP date), or a duration string ("30s");
    None for what is none of these."""
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)):
        return f"{max(0, int(v * 1000))}ms"
    v = v.strip()
    try:
        return f"{max(0, int(float(v) * 1000))}ms"
    except ValueError:
        pass
    try:
        duration_ms(v)
        return v
    except ValueError:
        pass
    try:
        at = email.utils.parsedate_to_datetime(v)
        return f"{max(0, int((at.timestamp() - time.time()) * 1000))}ms"
    except (TypeError, ValueError, IndexError):
        return None


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
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a Capstan server URL: {self.url!r} (write it like http://127.0.0.1:7400)")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path
        # One kept-alive connection per thread (http.client's are not
        # thread-safe), instead of a new TCP connection per request.
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method: str, path: str, body: Any = None, accept: tuple = ()) -> tuple:
        """One request: ``(status, data)``; a problem answer raises CapstanError."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"accept": "application/json"}
        if data is not None:
            headers["content-type"] = "application/json"
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        conn = self._connection()
        if conn.sock is not None and _closed_by_peer(conn.sock):
            # The server closed this kept-alive connection as it sat idle:
            # open a new one, rather than send into a closed one. (Nothing
            # is ever sent twice: a request that fails once sent may have
            # been acted on, so it is the caller's to retry.)
            self._drop_connection()
            conn = self._connection()
        try:
            conn.request(method, self._prefix + path, body=data, headers=headers)
            res = conn.getresponse()
            text = res.read()
        except BaseException:
            self._drop_connection()
            raise
        if res.will_close:
            self._drop_connection()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            # Not Capstan's answer: a proxy's error page, say.
            raise CapstanError({"detail": text[:500].decode(errors="replace")}, res.status) from None
        if 200 <= res.status < 300 or res.status in accept:
            return res.status, parsed
        if not isinstance(parsed, dict):
            parsed = {"detail": str(parsed)}
        raise CapstanError(parsed, res.status)

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


class JobContext:
    """What a handler gets beside its args."""

    __slots__ = ("job", "reason", "_progress", "_has_progress", "_stopped")

    def __init__(self, job: Dict[str, Any]) -> None:
        self.job = job
        #: Why the job was stopped: ``cancelled``, ``lost`` or ``shutdown``.
        self.reason: Optional[str] = None
        self._progress: Any = None
        self._has_progress = False
        self._stopped: Optional[threading.Event] = None

    @property
    def stopped(self) -> threading.Event:
        """Set when the job is cancelled, lost to a rescue, or the worker
        stops past its grace; ``reason`` says which. (Made on first use: most
        handlers never look.)"""
        event = self._stopped
        if event is None:
            with _STOP_LOCK:
                event = self._stopped
                if event is None:
                    event = threading.Event()
                    if self.reason is not None:
                        event.set()
                    self._stopped = event
        return event

    def progress(self, value: Any) -> None:
        """Record progress; it is sent with the next heartbeat."""
        self._progress = value
        self._has_progress = True

    def _stop(self, reason: str) -> None:
        with _STOP_LOCK:
            if self.reason is None:
                self.reason = reason
            event = self._stopped
        if event is not None:
            event.set()


_STOP_LOCK = threading.Lock()

Handler = Callable[[Any, JobContext], Any]

#: Told to a slot thread, the flusher or the claim loop: stop.
_STOP = object()


class Worker:
    """A pull worker of one queue.

    Its threads: ``run()``'s (claims), ``concurrency`` slot threads (run
    handlers), a flusher (completes in batches) and a heartbeat. They hand
    work to each other through ``queue.SimpleQueue`` (no per-job lock,
    condition or future), so the worker's own cost per job is a few
    microseconds beside the handler's.
    """

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
        if concurrency < 1:
            raise ValueError("a Worker needs a concurrency of at least 1")
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
        # Jobs being run, by id (read by the heartbeat; dict operations are
        # atomic in CPython).
        self._running: Dict[int, JobContext] = {}
        self._todo: "_queue.SimpleQueue[Any]" = _queue.SimpleQueue()    # claim loop → slots
        self._freed: "_queue.SimpleQueue[Any]" = _queue.SimpleQueue()   # slots → claim loop
        self._done: "_queue.SimpleQueue[Any]" = _queue.SimpleQueue()    # slots → flusher
        self._stopping = threading.Event()
        self._flush_until: Optional[float] = None

    def stop(self) -> None:
        """Ask the worker to stop; run() returns once it has."""
        self._stopping.set()
        self._freed.put(_STOP)  # wake the claim loop if it waits for a slot

    def run(self) -> None:
        """Claim and run jobs until stop() (or SIGTERM/SIGINT, from the main thread)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        slots = [threading.Thread(target=self._slot, name=f"capstan-job-{i}", daemon=True)
                 for i in range(self.concurrency)]
        beat = threading.Thread(target=self._heartbeats, name="capstan-heartbeat", daemon=True)
        flush = threading.Thread(target=self._flusher, name="capstan-complete", daemon=True)
        for t in (*slots, beat, flush):
            t.start()
        pause = 0.1
        busy = 0  # jobs handed to the slots and not yet finished
        while not self._stopping.is_set():
            busy -= self._take_freed(block=busy >= self.concurrency)
            if self._stopping.is_set():
                break
            free = self.concurrency - busy
            if free <= 0:
                continue
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
                self._report(e)
                self._stopping.wait(pause)
                pause = min(pause * 2, 5.0)
                continue
            for job in reply["jobs"]:
                ctx = JobContext(job)
                self._running[job["id"]] = ctx
                self._todo.put(ctx)
                busy += 1
        self._drain()
        for _ in slots:
            self._todo.put(_STOP)
        self._flush_until = time.monotonic() + self.grace_s
        self._done.put(_STOP)
        flush.join(timeout=self.grace_s + 2.0)

    def _take_freed(self, block: bool) -> int:
        """How many slots were freed since the last look (waiting for one
        when ``block``)."""
        n = 0
        if block:
            if self._freed.get() is not _STOP:
                n += 1
        while True:
            try:
                if self._freed.get_nowait() is not _STOP:
                    n += 1
            except _queue.Empty:
                return n

    def _slot(self) -> None:
        """One slot: run jobs as they come, until told to stop. Nothing a
        job does ends the thread."""
        while True:
            ctx = self._todo.get()
            if ctx is _STOP:
                return
            try:
                self._run_one(ctx)
            except BaseException as e:  # noqa: BLE001 - the slot lives on
                self._report(e)
            finally:
                # (Only this run's entry: the job may have been claimed
                # again meanwhile, after its lease ran out.)
                if self._running.get(ctx.job["id"]) is ctx:
                    self._running.pop(ctx.job["id"], None)
                self._freed.put(1)

    def _report(self, e: BaseException) -> None:
        """Tell ``on_error``, which must not stop a thread of the worker."""
        try:
            self.on_error(e)
        except BaseException:  # noqa: BLE001
            pass

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
            self._done.put({"id": job["id"], "lease": job["lease"], "result": result})
        except BaseException as e:  # noqa: BLE001 - a handler's error fails its job
            self._fail(ctx, e)

    def _fail(self, ctx: JobContext, e: BaseException) -> None:
        job = ctx.job
        if ctx.reason == "lost":
            return
        if ctx.reason == "shutdown":
            self._release(job)
            return
        try:
            message = str(e) or type(e).__name__
        except BaseException:  # noqa: BLE001 - an exception whose str() fails
            message = type(e).__name__
        body: Dict[str, Any] = {"lease": job["lease"], "error": message,
                                "permanent": isinstance(e, PermanentError)}
        if isinstance(e, RetryAfter):
            body["retry_after"] = e.retry_after
        if isinstance(e, HttpStatusError):
            body["status"] = e.status
            if e.retry_after:
                body["retry_after"] = e.retry_after
        self._fail_with(job, body)

    def _fail_with(self, job: Dict[str, Any], body: Dict[str, Any]) -> None:
        try:
            self.client.request("POST", f"/v1/jobs/{job['id']}/fail", body)
        except CapstanError as err:
            if err.status == 422 and err.field in ("status", "retry_after"):
                # (A status or Retry-After the server does not take: the
                # failure itself still counts, without it.)
                self._report(err)
                body = {k: v for k, v in body.items() if k != err.field}
                self._fail_with(job, body)
            elif err.status != 409:
                self._report(err)
        except Exception as err:  # noqa: BLE001
            self._report(err)

    def _release(self, job: Dict[str, Any]) -> None:
        try:
            self.client.request("POST", f"/v1/jobs/{job['id']}/release", {"lease": job["lease"]})
        except CapstanError as err:
            if err.status != 409:
                self._report(err)
        except Exception as err:  # noqa: BLE001
            self._report(err)

    def _flusher(self) -> None:
        """Send completions in batches of what has gathered, one request at a
        time, until told to stop and all is sent.

        A batch the server (or a proxy) refuses (a result over its limit, a
        body too large) is sent job by job, so one bad result
        fails its own job and no other; a batch that does not get through
        (network, 5xx) is tried again, until the grace after the drain is
        over (then its jobs are rescued and run again, as after a crash)."""
        pending: List[Dict[str, Any]] = []
        stopping = False
        while True:
            if not pending and not stopping:
                item = self._done.get()
                if item is _STOP:
                    stopping = True
                else:
                    pending.append(item)
            while len(pending) < 1000:
                try:
                    item = self._done.get_nowait()
                except _queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    pending.append(item)
            if not pending:
                if stopping:
                    return
                continue
            batch, pending = pending[:1000], pending[1000:]
            try:
                self.client.request("POST", "/v1/complete", {"jobs": batch})
            except Exception as e:  # noqa: BLE001
                if _refused(e):
                    again = self._complete_each(batch)
                    pending = again + pending
                    if not again:
                        continue
                else:
                    self._report(e)
                    pending = batch + pending
                if self._flush_until is not None and time.monotonic() >= self._flush_until:
                    self._report(RuntimeError(
                        f"{len(pending)} completions could not be sent before the worker stopped; "
                        "their jobs will be rescued and run again"))
                    return
                time.sleep(0.5)

    def _complete_each(self, batch: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Complete one at a time; a result the server refuses fails its
        job. Returns those to try again later."""
        again = []
        for c in batch:
            try:
                self.client.request("POST", f"/v1/jobs/{c['id']}/complete",
                                    {"lease": c["lease"], "result": c["result"]})
            except Exception as e:  # noqa: BLE001
                if isinstance(e, CapstanError) and e.status == 409:
                    continue  # no longer ours
                if not _refused(e):
                    again.append(c)
                    continue
                self._fail_with(c, {"lease": c["lease"], "permanent": True,
                                    "error": f"the server refused the job's result ({e.status}): {e.detail or e}"})
        return again

    def _heartbeats(self) -> None:
        while True:
            self._stopping.wait(self.heartbeat_s)
            if self._stopping.is_set():
                time.sleep(min(self.heartbeat_s, 1.0))
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
                self._report(e)

    def _wait_idle(self, until: float) -> None:
        """Wait until no job runs, or ``until`` (a monotonic time)."""
        while self._running and time.monotonic() < until:
            time.sleep(min(0.01, max(0.0, until - time.monotonic())))

    def _drain(self) -> None:
        self._wait_idle(time.monotonic() + self.grace_s)
        for ctx in list(self._running.values()):
            ctx._stop("shutdown")
        # Handlers that honour `stopped` release their own jobs; the rest
        # are given back after a little longer.
        self._wait_idle(time.monotonic() + 5.0)
        for ctx in list(self._running.values()):
            self._release(ctx.job)


def _refused(e: BaseException) -> bool:
    """A refusal of the request itself, which sending it again cannot change:
    a 4xx but 401/403 (the token: fixable by the operator, so tried again),
    408 and 429 (a timeout, a rate limit)."""
    return isinstance(e, CapstanError) and 400 <= e.status < 500 and e.status not in (401, 403, 408, 429)
