"""The read-only records the look-ups return (checkpoints, workers, queue stats, schedules, stored events,
job details and summaries, job types, health). `djobs.jobs` exports them too; this module is imported on
their first use, so a process that only enqueues never creates their dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from djobs.jobs import Job, JobStatus, PauseMode


@dataclass(frozen=True)
class Checkpoint:
    job_id: str
    call_index: int | None
    name: str
    value: Any
    error: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: dict[str, int]
    handlers: list[str]
    paused: bool
    pause_mode: PauseMode | None
    pause_reason: str | None
    paused_at: datetime | None
    started_at: datetime | None
    last_heartbeat_at: datetime | None
    running: int
    alive: bool


@dataclass(frozen=True)
class QueueStats:
    name: str
    paused: bool
    paused_at: datetime | None
    pause_reason: str | None
    counts: dict[str, int] = field(default_factory=dict)
    completed_last_minute: int = 0


@dataclass(frozen=True)
class ScheduleInfo:
    name: str
    job: str
    spec: str
    args: Any
    queue: str
    priority: int
    timezone: str | None
    paused: bool
    last_fire: datetime | None
    next_fire: datetime | None
    pause_reason: str | None = None
    #: "config" when a config file declares it (deleted once the file no longer does), else "api".
    source: str = "api"


@dataclass(frozen=True)
class StoredEvent:
    """One row of the database event log."""

    id: int
    timestamp: datetime
    kind: str
    job_id: str | None
    queue: str | None
    worker_id: str | None
    data: dict[str, Any]


@dataclass(frozen=True)
class JobDetail:
    """One job with what explains it: its checkpoints, its sub-jobs and its newest events (oldest first).
    What `djobs inspect ID`, the TUI's detail screen and the web UI's job view show."""

    job: Job
    checkpoints: list[Checkpoint]
    sub_jobs: list[Job]
    events: list[StoredEvent]
    #: Sub-jobs beyond the `sub_jobs` window (a wide fan-out lists its first ones only).
    more_sub_jobs: int = 0


@dataclass(frozen=True)
class JobSummary:
    """A job as listings show it: no full args or result, a bounded preview of each (dashboards page
    through thousands of these)."""

    id: str
    type: str
    queue: str
    status: JobStatus
    priority: int
    attempt: int
    max_retries: int
    run_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    parent_id: str | None
    key: str | None
    args_preview: str
    error_preview: str | None
    #: Why a waiting job waits ("fanout", "sleep", "signal") and the signal it waits for, as on `Job`.
    wait_kind: str | None = None
    wait_signal: str | None = None


@dataclass(frozen=True)
class JobTypeInfo:
    """A job type some worker registered in the database, with its defaults: what lets a producer that
    has no handler code enqueue it."""

    name: str
    queue: str
    retries: int
    priority: int
    timeout: float | None
    seen_at: datetime | None


@dataclass(frozen=True)
class Health:
    """`queue.health()`: ok, or the problems, one sentence each."""

    ok: bool
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok
