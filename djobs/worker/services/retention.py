"""Retention: deletes finished jobs older than the stored retention, in bounded batches, on the elected
worker only. It runs every few minutes (not every tick): an idle fleet pays one read of the settings and
one index probe per kept status per run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from djobs.worker.service import Service
from djobs.worker.services.elector import MAINTENANCE

if TYPE_CHECKING:
    from djobs.worker.worker import Worker

log = logging.getLogger("djobs.worker")

INTERVAL = 300.0


class RetentionService(Service):
    name = "retention"

    def __init__(self, worker: Worker, interval: float = INTERVAL, batch: int = 500) -> None:
        self.w = worker
        self.interval = interval
        self.batch = batch

    def active(self) -> bool:
        return self.interval > 0 and self.w.elector.is_leader(MAINTENANCE)

    def next_in(self) -> float:
        return self.interval

    def run_once(self) -> int:
        st = self.w.storage
        retention = st.retention()
        if not retention:
            return 0
        done = st.apply_retention(retention, self.batch)
        if done:
            log.info(
                "worker %s: retention deleted %s", self.w.id, ", ".join(f"{n} {s}" for s, n in done.items())
            )
        return sum(done.values())
