"""The domain: jobs, statuses, sub-jobs, fan-out results and read-only info records. No I/O here."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    WAITING = "waiting"
    CANCELLED = "cancelled"
    PAUSED = "paused"

    def __str__(self) -> str:
        return self.value

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


#: Every status, in the order listings and dashboards show them (live first, finished last).
STATUS_ORDER: tuple[JobStatus, ...] = (
    JobStatus.PENDING, JobStatus.RUNNING, JobStatus.WAITING, JobStatus.RETRYING, JobStatus.PAUSED,
    JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED,
)  # fmt: skip
#: Finished for good: a unique key is free again, retention may delete the row, `retry_job` may revive it.
TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
#: Not finished: holds its unique key, counts as work still to do.
ACTIVE = frozenset(STATUS_ORDER) - TERMINAL
#: What a claim may take (once due).
RUNNABLE = frozenset({JobStatus.PENDING, JobStatus.RETRYING})
TERMINAL_VALUES: tuple[str, ...] = tuple(s.value for s in STATUS_ORDER if s in TERMINAL)
ACTIVE_VALUES: tuple[str, ...] = tuple(s.value for s in STATUS_ORDER if s in ACTIVE)
STATUS_VALUES: tuple[str, ...] = tuple(s.value for s in STATUS_ORDER)


class PauseMode(enum.StrEnum):
    """GRACEFUL lets running work finish; AGGRESSIVE cancels running handlers."""

    GRACEFUL = "graceful"
    AGGRESSIVE = "aggressive"

    def __str__(self) -> str:
        return self.value


def from_epoch(ts: float | None) -> datetime | None:
    """Stored epoch seconds to an aware UTC datetime (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), UTC)


def to_epoch(dt: datetime) -> float:
    """Aware or naive (meaning UTC) datetime to epoch seconds."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass(frozen=True)
class Job:
    """A snapshot of one job row. `args` and `result` hold decoded JSON values."""

    id: str
    type: str
    args: Any
    queue: str
    priority: int
    status: JobStatus
    attempt: int
    max_retries: int
    last_error: str | None
    run_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_heartbeat_at: datetime | None
    result: Any = None
    parent_id: str | None = None
    unique_key: str | None = None
    progress: dict[str, Any] | None = None
    locked_by: str | None = None
    paused_at: datetime | None = None
    pause_reason: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (datetimes as ISO-8601 UTC)."""
        from djobs.codec import jsonable

        return dict(jsonable(self))


@dataclass(frozen=True)
class Sub:
    """One sub-job of a fan-out, or one job for `enqueue_many`. Unset options take the job defaults."""

    type: str
    args: Any = None
    priority: int | None = None
    retries: int | None = None
    queue: str | None = None
    delay: timedelta | float | int | None = None
    unique: str | None = None


@dataclass(frozen=True)
class Result:
    """The outcome of one sub-job, in submission order."""

    index: int
    job_id: str
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Strategy:
    """How a fan-out decides: `need` successes out of n, `fail_fast` on the first failure."""

    kind: str
    fraction: float = 1.0

    def required(self, n: int) -> int:
        if self.kind == "collect_all":
            return 0
        if self.kind == "fail_fast":
            return n
        return max(0, min(n, math.ceil(self.fraction * n - 1e-9)))

    def __str__(self) -> str:
        return f"threshold({self.fraction:g})" if self.kind == "threshold" else self.kind


FAIL_FAST = Strategy("fail_fast")
COLLECT_ALL = Strategy("collect_all")


def threshold(p: float) -> Strategy:
    """Succeed once at least ceil(p·n) sub-jobs succeed; fail as soon as that is impossible."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {p}")
    return Strategy("threshold", float(p))


def strategy_from_str(text: str) -> Strategy:
    if text == "fail_fast":
        return FAIL_FAST
    if text == "collect_all":
        return COLLECT_ALL
    if text.startswith("threshold(") and text.endswith(")"):
        return threshold(float(text[len("threshold(") : -1]))
    raise ValueError(f"unknown fan-out strategy {text!r}")


def values(results: list[Result]) -> list[Any]:
    return [r.value for r in results if r.ok]


def partition(results: list[Result]) -> tuple[list[Any], list[BaseException]]:
    return [r.value for r in results if r.ok], [r.error for r in results if r.error is not None]


def all_succeeded(results: list[Result]) -> bool:
    return all(r.ok for r in results)


def success_count(results: list[Result]) -> int:
    return sum(1 for r in results if r.ok)


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
