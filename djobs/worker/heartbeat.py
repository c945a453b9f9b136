"""A worker's own duties, on its keeper thread: heartbeat (with the leadership leases in the same
transaction), remote pause and lost ownership (woken by NOTIFY on PostgreSQL, polled on SQLite), time limits
(no database), and handlers registered after start.

These keep running while the worker drains: a draining worker must keep heartbeating, or another worker
would recover jobs it is still running.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING

from djobs.worker.service import Service

if TYPE_CHECKING:
    from djobs.worker.worker import Worker

log = logging.getLogger("djobs.worker")


class Heartbeat(Service):
    name = "heartbeat"

    def __init__(self, worker: Worker, interval: float) -> None:
        self.w = worker
        self.interval = interval
        self.max_backoff = interval  # liveness: a failed heartbeat is tried again within its interval

    def next_in(self) -> float:
        return self.interval

    def run_once(self) -> int:
        w = self.w
        asked = time.monotonic()
        leases = [] if w.stopping else [(name, w.elector.ttl) for name in w.elector.names]
        found, won = w.storage.heartbeat_and_lease(w.id, len(w.executor.running), leases)
        for name, _ in leases:
            w.elector.record(name, name in won, asked)
        if w.stopping:
            w.elector.step_down()
        if not found:
            log.warning("worker %s: its row was gone; registering again", w.id)
            w.register()
        if w.executor.running:
            w.storage.heartbeat_jobs(w.id)
        return 1


class ControlSync(Service):
    """Remote pause and resume of this worker (`djobs pause worker ID` from any process), and which of its
    queues have fleet-wide limits (a limit set anywhere is obeyed within this service's period, at once
    on PostgreSQL by NOTIFY)."""

    name = "control"

    def __init__(self, worker: Worker, poll: float, backstop: float) -> None:
        self.w = worker
        self.poll = poll
        self.backstop = backstop

    def next_in(self) -> float:
        return self.backstop if self.w.notified else self.poll

    def run_once(self) -> int:
        changed = int(self.w.sync_control())
        limited = self.w.storage.limited_queues() & set(self.w.queues)
        if limited != self.w.limited_queues:
            self.w.limited_queues = limited
            self.w.wake()
            changed += 1
        return changed


class Ownership(Service):
    """Reconcile running claims with the database, both ways (see `Worker.reconcile`). Only while this
    worker holds jobs: an idle worker has nothing to check."""

    name = "ownership"

    def __init__(self, worker: Worker, poll: float, backstop: float) -> None:
        self.w = worker
        self.poll = poll
        self.backstop = backstop

    def active(self) -> bool:
        ex = self.w.executor
        return bool(ex.running) or any(ex.ready.values()) or self.w.reconcile_needed

    def next_in(self) -> float:
        return self.backstop if self.w.notified else self.poll

    def run_once(self) -> int:
        return self.w.reconcile()


class TimeLimits(Service):
    """Time limits and cancellation grace: in process, at the exact deadline."""

    name = "time-limits"

    def __init__(self, worker: Worker) -> None:
        self.w = worker

    def active(self) -> bool:
        return bool(self.w.executor.running)

    def next_in(self) -> float:
        soonest = self.w.executor.next_deadline()
        return 0.25 if soonest is None else max(0.0, min(0.25, soonest - time.monotonic()))

    def run_once(self) -> int:
        freed = self.w.executor.enforce()
        if freed:
            self.w.wake()
        return freed


class NewHandlers(Service):
    """Handlers registered after the worker started are served too (and registered in the database)."""

    name = "handlers"

    def __init__(self, worker: Worker) -> None:
        self.w = worker

    def next_in(self) -> float:
        return 1.0

    def run_once(self) -> int:
        types = self.w.queue.job_types()
        if types == self.w.types:
            return 0
        self.w.types = types
        self.w.register()
        self.w.wake()
        return 1


def identity() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()
