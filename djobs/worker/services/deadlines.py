"""Fan-out deadlines, fired at their due time (not at a polling tick), and the backstops that decide
fan-outs whose decider died between writes and wake parents left waiting with nothing to wake them.

The service sleeps until the earliest deadline. A fan-out written meanwhile wakes it: in this process at
once, from other processes by NOTIFY on PostgreSQL; on SQLite it re-reads the earliest deadline twice a
second (a read of one index entry).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from djobs.worker.service import Service
from djobs.worker.services.elector import MAINTENANCE

if TYPE_CHECKING:
    from djobs.worker.worker import Worker

#: The backstops (finished fan-outs left undecided, orphaned waiters) run at least this often.
BACKSTOP = 10.0
#: SQLite has no NOTIFY: how often a deadline written by another process is looked for.
SQLITE_LOOK = 0.5


class Deadlines(Service):
    name = "deadlines"

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self._next: float | None = None  # epoch seconds of the next fan-out deadline
        self._swept = 0.0  # monotonic time of the last full sweep

    def active(self) -> bool:
        return self.w.elector.is_leader(MAINTENANCE)

    def next_in(self) -> float:
        cap = BACKSTOP if self.w.storage.is_pg else SQLITE_LOOK
        if self._next is None:
            return cap
        return max(0.0, min(cap, self._next - time.time()))

    def run_once(self) -> int:
        st = self.w.storage
        due = self._next is not None and self._next <= time.time()
        if not due and time.monotonic() - self._swept < BACKSTOP:
            self._next = st.next_fanout_deadline()
            if self._next is None or self._next > time.time():
                return 0
        self._swept = time.monotonic()
        timed_out, finished, self._next, woken = st.deadline_sweep()
        for fid in timed_out:
            for sub_id in st.unfinished_sub_jobs(fid):
                st.cancel_tree(sub_id, "fan-out timed out")
        decide = set(timed_out) | set(finished)
        if decide:
            self.w.dispatcher.decide(decide)
        if woken:
            self.w.wake()
        return len(decide) + woken
