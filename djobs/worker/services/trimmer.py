"""The trimmer: keeps the event log within its retention (age and rows), in bounded batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from djobs.worker.service import Service
from djobs.worker.services.elector import MAINTENANCE

if TYPE_CHECKING:
    from djobs.worker.worker import Worker

INTERVAL = 60.0


class Trimmer(Service):
    name = "trimmer"

    def __init__(self, worker: Worker) -> None:
        self.w = worker

    def active(self) -> bool:
        return self.w.elector.is_leader(MAINTENANCE)

    def next_in(self) -> float:
        return INTERVAL

    def run_once(self) -> int:
        return self.w.storage.trim_events(self.w.queue.event_retention, self.w.queue.event_max_rows)
