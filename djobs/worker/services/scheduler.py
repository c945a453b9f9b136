"""The scheduler: fires due schedules, each fire time exactly once however many schedulers run (the fire
time is claimed in the database with its enqueue), and sleeps until the next fire time. After downtime only
the most recent missed fire time runs."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from djobs.jobs import NewJob, new_id
from djobs.schedule import parse_spec
from djobs.worker.service import Service
from djobs.worker.services.elector import SCHEDULER

if TYPE_CHECKING:
    from djobs.worker.worker import Worker

log = logging.getLogger("djobs.worker")


class Scheduler(Service):
    name = "scheduler"

    def __init__(self, worker: Worker, max_sleep: float) -> None:
        self.w = worker
        self.max_sleep = max_sleep  # schedules changed elsewhere are noticed within this (or at once by NOTIFY)
        self._next: float | None = None

    def active(self) -> bool:
        return self.w.scheduler and not self.w.stopping and self.w.elector.is_leader(SCHEDULER)

    def next_in(self) -> float:
        if self._next is None:
            return self.max_sleep
        return max(0.0, min(self.max_sleep, self._next - time.time()))

    def run_once(self) -> int:
        st = self.w.storage
        fired = 0
        for name, job, spec, args, queue, priority, retries, next_fire, now in st.due_schedules():
            try:
                sched = parse_spec(spec)
                fire = max(float(next_fire), sched.last_at_or_before(float(now)))
                nxt = sched.next_after(float(now))
                new = NewJob(new_id(), job, queue, args or "null", int(priority), int(retries), at=fire)
                fired += int(st.fire_schedule(name, next_fire, fire, nxt, new))
            except ValueError as exc:
                log.error("schedule %s cannot fire: %s", name, exc)
        self._next = st.next_schedule_fire()
        return fired
