"""The rescuer: jobs of workers silent for the stale age go back to pending (or fail, attempts spent)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from djobs.worker.service import Service
from djobs.worker.services.elector import MAINTENANCE

if TYPE_CHECKING:
    from djobs.worker.worker import Worker

log = logging.getLogger("djobs.worker")
ERROR = "worker lost (no heartbeat) and attempts are spent"


class Rescuer(Service):
    name = "rescuer"

    def __init__(self, worker: Worker, interval: float, stale_age: float) -> None:
        self.w = worker
        self.interval = interval
        self.stale_age = stale_age

    def active(self) -> bool:
        return self.interval > 0 and self.w.elector.is_leader(MAINTENANCE)

    def next_in(self) -> float:
        return self.interval

    def run_once(self) -> int:
        rows = self.w.storage.reap(self.stale_age, ERROR)
        if rows:
            log.warning("worker %s: recovered %d job(s) from silent workers", self.w.id, len(rows))
            self.w.wake()
            failed = {r[4] for r in rows if r[4] and r[1] == "failed"}
            if failed:
                self.w.dispatcher.decide(failed)
        return len(rows)
