"""Leadership: one worker at a time runs each fleet-wide duty, so a fleet of idle workers costs the
database almost nothing.

Leases are rows (`djobs_leases`) renewed with every heartbeat, in the heartbeat's own transaction; a lease
runs for `ttl` = stale age − heartbeat interval, so when a leader dies another worker takes over within the
stale age (its next heartbeat after the lease runs out). A stopping leader drops its leases at once. Two
leases: "maintenance" (rescuer, deadlines, trimming, retention) for every worker, "scheduler" for workers
that run the scheduler. A leader that cannot renew (database away) steps down on its own clock before its
lease can run out in the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("djobs.worker")

MAINTENANCE, SCHEDULER = "maintenance", "scheduler"


class Elector:
    def __init__(self, worker_id: str, names: list[str], ttl: float, on_elected: Callable[[str], None]) -> None:
        self.worker_id = worker_id
        self.names = names
        self.ttl = ttl
        self._until: dict[str, float] = {}
        self._on_elected = on_elected

    def is_leader(self, name: str) -> bool:
        return time.monotonic() < self._until.get(name, 0.0)

    @property
    def leading(self) -> list[str]:
        return [n for n in self.names if self.is_leader(n)]

    def record(self, name: str, won: bool, asked_at: float) -> None:
        """The outcome of a renewal asked at monotonic time `asked_at` (the lease's ttl counts from then, a
        little before the database's own clock, so we step down first)."""
        was = self.is_leader(name)
        if won:
            self._until[name] = asked_at + self.ttl * 0.9
            if not was:
                log.info("worker %s is now the %s leader", self.worker_id, name)
                self._on_elected(name)
        else:
            if was:
                log.info("worker %s lost the %s lease", self.worker_id, name)
            self._until.pop(name, None)

    def step_down(self) -> None:
        self._until.clear()
