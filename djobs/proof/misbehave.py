"""The selftest's misbehaving handlers (with `--chaos`): user code that hangs past its time limit, raises
database errors of its own, returns results that cannot be stored, or asks for impossible retry delays.

    register(queue, ledger)              # beside the selftest handlers (ledger None in the orchestrator)
    seed(enqueue, n)                     # the n-th round of the load enqueues one misbehaving job
    watch = SlotWatch(queue); watch.start(); ...; watch.stop(); watch.samples

Every one of them must end `failed` within its attempts (none loops, none is refunded forever), and no
slot may stay taken past its job's time limit. `SlotWatch` reads the running jobs that have a limit
twice a second during the run, so `invariants.check_limits` can tell a slot held too long (a worker
that was not killed still running an attempt past its limit) from one whose worker died with it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any

import djobs
from djobs.proof.ledger import Ledger

#: Seeded job kind (in `Snapshot.seeded`) and the ledger row kind their handlers write at each run.
KIND = "misbehave"
#: The time limit every misbehaving job is enqueued with (seconds).
LIMIT = 1.0
TYPES = ("selftest.hang", "selftest.ahang", "selftest.dberror", "selftest.unstorable", "selftest.badretry")
BAD_DELAYS = ("inf", "nan", "-1")
#: How often SlotWatch reads the running jobs.
WATCH_EVERY = 0.5


def register(queue: Any, ledger: Ledger | None) -> None:
    def note(ctx: djobs.Context) -> None:
        if ledger is None:
            raise RuntimeError("selftest handlers run only in selftest worker processes")
        ledger.write(KIND, job=ctx.job_id, attempt=ctx.job.attempt, type=ctx.job.type)

    def hang(ctx: djobs.Context, args: Any) -> None:
        """Sleeps far past its limit and never looks at ctx.cancelled: its thread must be abandoned."""
        note(ctx)
        time.sleep(3600)

    async def ahang(ctx: djobs.Context, args: Any) -> None:
        """Swallows its first cancellation, then waits on: only the time limit's abandonment frees the slot."""
        note(ctx)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)

    def dberror(ctx: djobs.Context, args: dict[str, Any]) -> None:
        """A database error from the handler's own code: the job's failure, not a djobs outage."""
        note(ctx)
        if args.get("storage"):
            raise djobs.StorageUnavailable("the handler's own database is unreachable")
        raise sqlite3.OperationalError("database is locked")

    def unstorable(ctx: djobs.Context, args: Any) -> Any:
        note(ctx)
        value: Any = 0
        for _ in range(5000):
            value = [value]
        return value

    def badretry(ctx: djobs.Context, args: dict[str, Any]) -> None:
        note(ctx)
        raise djobs.RetryAfter(float(args["delay"]), "selftest: an impossible retry delay")

    for name, fn in zip(TYPES, (hang, ahang, dberror, unstorable, badretry), strict=True):
        queue.register(name, fn, retries=1)


def seed(enqueue: Any, n: int) -> None:
    """Enqueue the n-th misbehaving job (the types in turn): `enqueue(kind, type, args, **options)`."""
    job_type = TYPES[n % len(TYPES)]
    args = {"storage": n % 2 == 0, "delay": BAD_DELAYS[n % len(BAD_DELAYS)]}
    enqueue(KIND, job_type, args, timeout=LIMIT)


class SlotWatch:
    """Samples the running jobs that have a time limit: (when, job id, started, worker pid, limit)."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.samples: list[tuple[float, str, float, int | None, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="selftest-slot-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(WATCH_EVERY):
            try:
                running = self.queue.list_jobs(status="running", limit=1000)
            except djobs.StorageUnavailable:
                continue  # a database restart: nothing to sample now
            now = time.time()
            for job in running:
                if job.timeout is not None and job.started_at is not None:
                    self.samples.append((now, job.id, job.started_at.timestamp(), worker_pid(job.locked_by), job.timeout))


def worker_pid(worker_id: str | None) -> int | None:
    """The process id inside a worker id (`host-pid-suffix`)."""
    try:
        return int((worker_id or "").rsplit("-", 2)[1])
    except (IndexError, ValueError):
        return None
