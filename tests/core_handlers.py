"""Handlers and the side-effect ledger used by the core-engine tests (tests/test_core_*.py).

Every handler writes what it does to an append-only ledger file: one JSON line per record, written with a
single `write` on an O_APPEND descriptor and fsync'd, so records from many processes never interleave and
survive a `kill -9` of the writer the instant after. The tests read the ledger to count executions.

    ledger = Ledger(path)
    register(queue, ledger)                      # every handler below
    register(queue, ledger, only={"type_a"})     # a worker that knows one job type only
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import djobs


class Ledger:
    """Append-only, fsync'd JSON-lines file shared by the test and its worker processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def record(self, kind: str, job_id: str | None, **extra: Any) -> None:
        line = json.dumps({"kind": kind, "job": job_id, "pid": os.getpid(), "t": time.time(), **extra})
        data = (line + "\n").encode()
        with self._lock:
            fd = self._open()
            os.write(fd, data)
            os.fsync(fd)

    def read(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        # A line cut short by a kill between write and newline cannot happen (one write per record), but a
        # reader may race a writer mid-write: only complete lines count.
        return [json.loads(line) for line in text.split("\n")[:-1] if line]

    def records(self, kind: str | None = None, job: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.read() if (kind is None or r["kind"] == kind) and (job is None or r["job"] == job)]

    def count_by_job(self, kind: str) -> Counter[str]:
        return Counter(r["job"] for r in self.read() if r["kind"] == kind)


def register(queue: djobs.Queue, ledger: Ledger, only: set[str] | None = None, hooks: bool = False) -> None:
    """Register the test handlers (all, or the names in `only`) on `queue`; with hooks=True also the four
    hooks, each recording its call in the ledger."""

    def rec(ctx: djobs.Context, args: dict[str, Any] | None) -> dict[str, Any]:
        ledger.record("run", ctx.job_id, attempt=ctx.job.attempt, type=ctx.job.type)
        return {"pid": os.getpid(), "n": (args or {}).get("n")}

    def type_a(ctx: djobs.Context, args: Any) -> int:
        ledger.record("run", ctx.job_id, attempt=ctx.job.attempt, type="type_a")
        return os.getpid()

    def type_b(ctx: djobs.Context, args: Any) -> int:
        ledger.record("run", ctx.job_id, attempt=ctx.job.attempt, type="type_b")
        return os.getpid()

    def block_first(ctx: djobs.Context, args: Any) -> int:
        """Attempt 1 blocks (until its worker is killed); any later attempt completes at once."""
        ledger.record("run", ctx.job_id, attempt=ctx.job.attempt)
        if ctx.job.attempt == 1:
            time.sleep(600)
        return os.getpid()

    def suicide(ctx: djobs.Context, args: Any) -> None:
        """Kills its own worker process, every time."""
        ledger.record("run", ctx.job_id, attempt=ctx.job.attempt)
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)

    def slow(ctx: djobs.Context, args: dict[str, Any]) -> int:
        """Runs for args["seconds"]; cooperative (wakes on cancellation) when args["coop"]."""
        ledger.record("start", ctx.job_id, attempt=ctx.job.attempt)
        if args.get("coop"):
            cancelled = ctx.wait_cancelled(float(args["seconds"]))
        else:
            time.sleep(float(args["seconds"]))
            cancelled = ctx.cancelled
        ledger.record("end", ctx.job_id, attempt=ctx.job.attempt, cancelled=cancelled)
        return os.getpid()

    def stall_first(ctx: djobs.Context, args: dict[str, Any]) -> dict[str, Any]:
        """Attempt 1 sleeps args["seconds"] without looking at cancellation (the test SIGSTOPs its worker
        meanwhile), then returns; later attempts return at once. The result names the process."""
        ledger.record("start", ctx.job_id, attempt=ctx.job.attempt)
        if ctx.job.attempt == 1:
            time.sleep(float(args["seconds"]))
        ledger.record("end", ctx.job_id, attempt=ctx.job.attempt)
        return {"pid": os.getpid(), "attempt": ctx.job.attempt}

    def gated(ctx: djobs.Context, args: dict[str, Any]) -> dict[str, Any]:
        """Attempt n waits until the file args["gates"]/go<n> exists, then returns naming itself."""
        attempt = ctx.job.attempt
        ledger.record("start", ctx.job_id, attempt=attempt)
        gate = Path(args["gates"]) / f"go{attempt}"
        deadline = time.monotonic() + 120
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        ledger.record("end", ctx.job_id, attempt=attempt)
        return {"pid": os.getpid(), "attempt": attempt}

    handlers = {
        "rec": rec,
        "type_a": type_a,
        "type_b": type_b,
        "block_first": block_first,
        "suicide": suicide,
        "slow": slow,
        "stall_first": stall_first,
        "gated": gated,
    }
    retries = {"suicide": 2, "block_first": 3, "stall_first": 3, "slow": 3, "gated": 3}
    for name, fn in handlers.items():
        if only is None or name in only:
            queue.register(name, fn, retries=retries.get(name, 0))

    if hooks:
        queue.on_job_start(lambda job: ledger.record("hook_start", job.id, attempt=job.attempt))
        queue.on_job_complete(lambda job, result: ledger.record("hook_complete", job.id, result=result))
        queue.on_job_fail(lambda job, exc: ledger.record("hook_fail", job.id, error=repr(exc)))
        queue.on_retry(lambda job, attempt, exc: ledger.record("hook_retry", job.id, attempt=attempt))


def register_names(queue: djobs.Queue) -> None:
    """The same job types with no-op handlers, so a test process can enqueue them without running them."""
    register(queue, Ledger(os.devnull))
