"""Shared helpers of the core-engine tests: deadline polling, worker-process fixtures, in-process workers."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dbsql import sql
from worker_proc import WorkerProc

import djobs

T = TypeVar("T")

# Short liveness settings so crash recovery is observable in seconds.
HEARTBEAT = 0.2
STALE_AGE = 2.0
STALE_INTERVAL = 0.5


def wait_until(fn: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll fn until it returns something truthy; fail the test (naming `what`) at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def status_counts(queue: djobs.Queue) -> dict[str, int]:
    rows = sql(queue.storage, "SELECT status, COUNT(*) FROM djobs_jobs GROUP BY status").fetchall()
    return {str(s): int(n) for s, n in rows}


def job_count(queue: djobs.Queue) -> int:
    return int(sql(queue.storage, "SELECT COUNT(*) FROM djobs_jobs").fetchone()[0])


def stored_events(queue: djobs.Queue, job_id: str, kind: str | None = None) -> list[djobs.StoredEvent]:
    evs = queue.events_since(0, limit=10_000, job_id=job_id)
    return [e for e in evs if kind is None or e.kind == kind]


class Procs:
    """Starts worker processes for one test and kills (SIGKILL, by pid) whatever is left at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.log_dir = tmp_path / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.started: list[WorkerProc] = []

    def start(self, url: str, ledger: Path | str, *extra: str, stale_age: float = STALE_AGE,
              env: dict[str, str] | None = None) -> WorkerProc:
        args = [
            "--heartbeat", str(HEARTBEAT), "--stale-age", str(stale_age), "--stale-interval", str(STALE_INTERVAL),
            *extra,
        ]
        w = WorkerProc(url, ledger, self.log_dir, *args, env=env).start()
        self.started.append(w)
        return w

    def logs(self) -> str:
        return "\n".join(f"--- worker {w.pid}:\n{w.tail()}" for w in self.started)

    def cleanup(self) -> None:
        for w in self.started:
            w.cleanup()


def procs_for(tmp_path: Path) -> Iterator[Procs]:
    """Body of a test module's `procs` fixture: `yield from procs_for(tmp_path)`."""
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


@contextlib.contextmanager
def running(queue: djobs.Queue, **options: Any) -> Iterator[djobs.Worker]:
    """An in-process worker on a background thread for the duration of the block."""
    options.setdefault("queues", {"default": 4})
    options.setdefault("heartbeat_interval", HEARTBEAT)
    options.setdefault("stale_lock_age", STALE_AGE)
    options.setdefault("stale_lock_interval", STALE_INTERVAL)
    options.setdefault("poll_interval", 0.05)
    w = queue.worker(**options)
    w.start()
    try:
        yield w
    finally:
        w.stop(timeout=10)
