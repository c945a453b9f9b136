"""Standalone twins of the Queue's pause functions: storage first, then the Queue method's arguments.

    djobs.pause_queue(store, "emails")
    djobs.paused_jobs(store, queue="emails")
"""

from __future__ import annotations

from typing import Any

from djobs.jobs import Job, PauseMode
from djobs.storage import PeeweeStorage


def _q(store: PeeweeStorage) -> Any:
    from djobs.queue import Queue

    return Queue(store)


def pause_job(store: PeeweeStorage, job_id: str, mode: PauseMode = PauseMode.GRACEFUL, reason: str | None = None) -> bool:
    return bool(_q(store).pause_job(job_id, mode=mode, reason=reason))


def resume_job(store: PeeweeStorage, job_id: str) -> bool:
    return bool(_q(store).resume_job(job_id))


def is_job_paused(store: PeeweeStorage, job_id: str) -> bool:
    return bool(_q(store).is_job_paused(job_id))


def paused_jobs(store: PeeweeStorage, queue: str | None = None) -> list[Job]:
    return list(_q(store).paused_jobs(queue=queue))


def pause_queue(store: PeeweeStorage, name: str, reason: str | None = None) -> None:
    _q(store).pause_queue(name, reason=reason)


def resume_queue(store: PeeweeStorage, name: str) -> None:
    _q(store).resume_queue(name)


def is_queue_paused(store: PeeweeStorage, name: str) -> bool:
    return bool(_q(store).is_queue_paused(name))


def paused_queues(store: PeeweeStorage) -> list[str]:
    return list(_q(store).paused_queues())
