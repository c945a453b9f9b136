"""The event records published on the bus (see djobs/events.py, which also exports them): lifecycle
events of jobs, queues and workers, durable-step events, and custom events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from djobs.events import Event
from djobs.jobs import Job, PauseMode


@dataclass(frozen=True)
class JobEvent(Event):
    job_id: str
    job: Job | None = None


@dataclass(frozen=True)
class JobStarted(JobEvent):
    """A worker claimed the job and its handler is starting."""


@dataclass(frozen=True)
class JobCompleted(JobEvent):
    """The handler returned; the result is stored."""


@dataclass(frozen=True)
class JobFailed(JobEvent):
    error: str = ""


@dataclass(frozen=True)
class JobRetrying(JobEvent):
    error: str = ""
    attempt: int = 0
    next_run_at: datetime | None = None


@dataclass(frozen=True)
class JobPaused(JobEvent):
    """The job was paused (by anyone, from any process)."""


@dataclass(frozen=True)
class JobResumed(JobEvent):
    """A paused job was resumed."""


@dataclass(frozen=True)
class QueuePaused(Event):
    queue: str


@dataclass(frozen=True)
class QueueResumed(Event):
    queue: str


@dataclass(frozen=True)
class WorkerPaused(Event):
    worker_id: str
    mode: PauseMode = PauseMode.GRACEFUL


@dataclass(frozen=True)
class WorkerResumed(Event):
    worker_id: str
    mode: PauseMode | None = None


@dataclass(frozen=True)
class CheckpointSaved(Event):
    job_id: str
    call_index: int | None
    name: str


@dataclass(frozen=True)
class JobSleeping(Event):
    """The job sleeps (`ctx.sleep`), waiting and holding no worker, until `until`."""

    job_id: str
    until: datetime | None = None


@dataclass(frozen=True)
class JobWaitingSignal(Event):
    """The job waits for signal `signal`, holding no worker, until it comes or `deadline` passes."""

    job_id: str
    signal: str = ""
    deadline: datetime | None = None


@dataclass(frozen=True)
class SignalReceived(Event):
    """A durable step of the job consumed signal `signal`."""

    job_id: str
    signal: str = ""


@dataclass(frozen=True)
class CustomEvent(Event):
    job_id: str | None
    kind: str = "custom"
    data: Any = None


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def event_kind(ev: Event) -> str:
    """The stable tag stored in the event log: "job_started", …, "custom:<kind>" for custom events."""
    if isinstance(ev, CustomEvent):
        return f"custom:{ev.kind}"
    return _snake(type(ev).__name__)
