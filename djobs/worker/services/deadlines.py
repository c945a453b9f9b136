"""Fan-out deadlines, fired at their due time (not at a polling tick), and the backstops that decide
fan-outs whose decider died between writes and wake parents left waiting with nothing to wake them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from djobs.worker.service import Service
from djobs.worker.services.elector import MAINTENANCE

if TYPE_CHECKING:
    from djobs.worker.worker import Worker

#: The backstops (finished fan-outs left undecided, orphaned waiters) run at least this often.
BACKSTOP = 10.0


class Deadlines(Service):
    name = "deadlines"

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self._next: float | None = None  # epoch seconds of the next fan-out deadline

    def active(self) -> bool:
        return self.w.elector.is_leader(MAINTENANCE)

    def next_in(self) -> float:
        if self._next is None:
            return BACKSTOP
        return max(0.0, min(BACKSTOP, self._next - time.time()))

    def run_once(self) -> int:
        st = self.w.storage
        timed_out, finished, self._next, woken = st.deadline_sweep()
        for fid in timed_out:
            for sub_id in st.unfinished_sub_jobs(fid):
                st.cancel_tree(sub_id, "fan-out timed out")
        due = set(timed_out) | set(finished)
        if due:
            self.w.dispatcher.decide(due)
        if woken:
            self.w.wake()
        return len(due) + woken
