"""The client's calls against a running Capstan server: what an application
does with it besides running a Worker. Run it against a server of your own
(it writes jobs to the queue "client-check", kind "client.check", which
nothing serves):

    CAPSTAN_URL=http://127.0.0.1:7400 CAPSTAN_TOKEN=... python3 clients/python/tests/check.py

It exits 0 and prints "ok" when every check holds; otherwise it raises.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from capstan_client import CapstanError, Client, WaitTimeout, duration_ms  # noqa: E402


def expect(exc, check, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc as e:  # noqa: BLE001
        assert check(e), f"unexpected {e!r}"
        return
    raise AssertionError(f"{fn.__name__} did not raise {exc.__name__}")


client = Client()
queue = "client-check"
key = f"check-{os.getpid()}-{time.time()}"

# Enqueue: new, then for the same idempotency key the same job.
made = client.enqueue("client.check", {"n": 1}, queue=queue, idempotency_key=key, tags=["check"])
assert made["existing"] is False and made["job"]["state"] == "available", made
again = client.enqueue("client.check", {"n": 2}, queue=queue, idempotency_key=key)
assert again["existing"] is True and again["job"]["id"] == made["job"]["id"], again
job_id = made["job"]["id"]

# Many, in one transaction; a bad one refuses them all.
many = client.enqueue_many([
    {"kind": "client.check", "queue": queue, "args": {"n": 3}},
    {"kind": "client.check", "queue": queue, "args": {"n": 4}, "delay": "1h"},
])
assert [r["state"] for r in many] == ["available", "scheduled"], many
expect(CapstanError, lambda e: e.status == 422 and e.kind == "invalid" and e.field == "jobs[1].kind",
       client.enqueue_many, [{"kind": "client.check", "queue": queue}, {"kind": "", "queue": queue}])

# Read: one job, and the list (newest first, by tag).
got = client.get(job_id)
assert got["id"] == job_id and got["args"] == {"n": 1}, got
listed = client.list(queue=queue, tag="check", limit=10)
assert any(j["id"] == job_id for j in listed["jobs"]), listed
expect(CapstanError, lambda e: e.status == 404 and e.kind == "not-found", client.get, 987654321)

# Wait: nothing runs these, so a short wait times out with the job as it is.
expect(WaitTimeout, lambda e: e.job["state"] == "available", client.wait, job_id, timeout="200ms")

# Cancel: a waiting job ends cancelled, and a wait answers at once.
cancelled = client.cancel(job_id)
assert cancelled["outcome"] == "cancelled" and cancelled["job"]["state"] == "cancelled", cancelled
assert client.wait(job_id, timeout="5s")["state"] == "cancelled"
# Retry: it is available again.
assert client.retry(job_id)["state"] == "available"
client.cancel(job_id)

assert duration_ms("1.5s") == 1500
expect(ValueError, lambda e: True, duration_ms, "soon")
print("ok")
