"""Failures you can act on: dead letters (failed jobs), requeueing them in bulk, and the retention of
finished jobs, which the elected worker applies on its own."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from djobs import validate
from djobs.api.base import QueueBase
from djobs.jobs import Job, Retention
from djobs.retry import to_seconds


def _since(since: datetime | timedelta | float | None) -> float | None:
    """A point in time: a datetime (naive means UTC), or a duration meaning that long ago."""
    if since is None:
        return None
    if isinstance(since, datetime):
        return validate.when("since", since)
    return time.time() - validate.seconds("since", to_seconds(since))


def _keep(what: str, value: timedelta | float | None) -> float | None:
    return None if value is None else validate.seconds(f"retention of {what} jobs", to_seconds(value))


class FlowAPI(QueueBase):
    def dead_letters(self, queue: str | None = None, type: str | None = None, limit: int = 50) -> list[Job]:  # noqa: A002
        """Failed jobs (attempts spent, or refused with NoRetry), newest failure first; each carries its
        `last_error` and `last_traceback`."""
        return self.storage.dead_letters(queue, type, limit)

    def requeue_failed(
        self,
        queue: str | None = None,
        type: str | None = None,  # noqa: A002
        since: datetime | timedelta | float | None = None,
    ) -> int:
        """`retry_job` for every failed job matching the filters; how many were requeued. `since`: only jobs
        that failed at or after it (a datetime, or a duration meaning that long ago). Done in bounded
        batches, so workers keep claiming meanwhile; a job whose unique key another job now holds stays
        failed."""
        return self.storage.requeue_failed(queue, type, _since(since))

    def set_retention(
        self,
        completed: timedelta | float | None = timedelta(days=7),
        failed: timedelta | float | None = timedelta(days=30),
        cancelled: timedelta | float | None = timedelta(days=7),
    ) -> None:
        """Keep finished jobs this long after they finished (None: forever), then the elected worker deletes
        them with their checkpoints, signals, fan-out records and events. Stored in the database, so every
        worker of the fleet applies the same settings; until it is first set, jobs are kept forever. A job
        inside its `unique_for` window, or whose parent is still going, is kept until that ends."""
        self.storage.set_retention(Retention(_keep("completed", completed), _keep("failed", failed),
                                             _keep("cancelled", cancelled)))  # fmt: skip

    def retention(self) -> Retention:
        """The stored retention, seconds per status (None: forever)."""
        return self.storage.retention()
