"""djobs: durable jobs for Python on an SQLite file or PostgreSQL.

    import djobs

    store = djobs.connect("sqlite:///djobs.db")
    queue = djobs.Queue(store)

    @queue.handler("hello")
    def hello(args: dict) -> str:
        return f"hello {args['name']}"

    job_id = queue.enqueue("hello", {"name": "world"})
    queue.worker().run()

Names are imported lazily: `import djobs` stays cheap for the CLI and shell completion.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Limits": "djobs.jobs",
    "Rate": "djobs.jobs",
    "Retention": "djobs.jobs",
    "Health": "djobs.jobs",
    "JobTypeInfo": "djobs.jobs",
    "JobSummary": "djobs.jobs",
    "SignalTimeout": "djobs.errors",
    "JobTimeout": "djobs.errors",
    "Backoff": "djobs.retry",
    # storage
    "connect": "djobs.storage",
    "PeeweeStorage": "djobs.storage",
    "PoolConfig": "djobs.storage",
    # queue and worker
    "Queue": "djobs.queue",
    "Worker": "djobs.worker",
    # domain
    "Job": "djobs.jobs",
    "JobStatus": "djobs.jobs",
    "PauseMode": "djobs.jobs",
    "Sub": "djobs.jobs",
    "Result": "djobs.jobs",
    "Strategy": "djobs.jobs",
    "FAIL_FAST": "djobs.jobs",
    "COLLECT_ALL": "djobs.jobs",
    "threshold": "djobs.jobs",
    "values": "djobs.jobs",
    "partition": "djobs.jobs",
    "all_succeeded": "djobs.jobs",
    "success_count": "djobs.jobs",
    "Checkpoint": "djobs.jobs",
    "JobDetail": "djobs.jobs",
    "WorkerInfo": "djobs.jobs",
    "QueueStats": "djobs.jobs",
    "ScheduleInfo": "djobs.jobs",
    "StoredEvent": "djobs.jobs",
    # handlers
    "Context": "djobs.context",
    "current_job": "djobs.context",
    "current_job_id": "djobs.context",
    "call": "djobs.context",
    "save_checkpoint": "djobs.context",
    "load_checkpoint": "djobs.context",
    "fan_out": "djobs.context",
    "sleep": "djobs.context",
    "sleep_until": "djobs.context",
    "wait_for_signal": "djobs.context",
    "check_signal": "djobs.context",
    "job": "djobs.registry",
    # errors
    "DjobsError": "djobs.errors",
    "NoRetry": "djobs.errors",
    "RetryAfter": "djobs.errors",
    "DuplicateJob": "djobs.errors",
    "UnknownJobType": "djobs.errors",
    "JobNotFound": "djobs.errors",
    "JobFailedError": "djobs.errors",
    "JobCancelledError": "djobs.errors",
    "JobCancelled": "djobs.errors",
    "FanOutFailed": "djobs.errors",
    "SubJobError": "djobs.errors",
    "DeterminismError": "djobs.errors",
    "NotPaused": "djobs.errors",
    "StorageUnavailable": "djobs.errors",
    "StorageRefused": "djobs.errors",
    "ConfigError": "djobs.errors",
    # retries and schedules
    "RetryConfig": "djobs.retry",
    "Schedule": "djobs.schedule",
    "every": "djobs.schedule",
    "daily": "djobs.schedule",
    "weekly": "djobs.schedule",
    "cron": "djobs.schedule",
    # events
    "Event": "djobs.events",
    "Subscription": "djobs.events",
    "JobStarted": "djobs.events",
    "JobCompleted": "djobs.events",
    "JobFailed": "djobs.events",
    "JobRetrying": "djobs.events",
    "JobPaused": "djobs.events",
    "JobResumed": "djobs.events",
    "QueuePaused": "djobs.events",
    "QueueResumed": "djobs.events",
    "WorkerPaused": "djobs.events",
    "WorkerResumed": "djobs.events",
    "CheckpointSaved": "djobs.events",
    "CustomEvent": "djobs.events",
    "JobSleeping": "djobs.events",
    "JobWaitingSignal": "djobs.events",
    "SignalReceived": "djobs.events",
    # standalone controls
    "pause_job": "djobs.control",
    "resume_job": "djobs.control",
    "is_job_paused": "djobs.control",
    "paused_jobs": "djobs.control",
    "pause_queue": "djobs.control",
    "resume_queue": "djobs.control",
    "is_queue_paused": "djobs.control",
    "paused_queues": "djobs.control",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'djobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # let type checkers and IDEs see the real names
    from djobs.context import (
        Context,
        call,
        check_signal,
        current_job,
        current_job_id,
        fan_out,
        load_checkpoint,
        save_checkpoint,
        sleep,
        sleep_until,
        wait_for_signal,
    )
    from djobs.control import (
        is_job_paused,
        is_queue_paused,
        pause_job,
        pause_queue,
        paused_jobs,
        paused_queues,
        resume_job,
        resume_queue,
    )
    from djobs.errors import (
        ConfigError,
        DeterminismError,
        DjobsError,
        DuplicateJob,
        FanOutFailed,
        JobCancelled,
        JobCancelledError,
        JobFailedError,
        JobNotFound,
        JobTimeout,
        NoRetry,
        NotPaused,
        RetryAfter,
        SignalTimeout,
        StorageRefused,
        StorageUnavailable,
        SubJobError,
        UnknownJobType,
    )
    from djobs.events import (
        CheckpointSaved,
        CustomEvent,
        Event,
        JobCompleted,
        JobFailed,
        JobPaused,
        JobResumed,
        JobRetrying,
        JobSleeping,
        JobStarted,
        JobWaitingSignal,
        QueuePaused,
        QueueResumed,
        SignalReceived,
        Subscription,
        WorkerPaused,
        WorkerResumed,
    )
    from djobs.jobs import (
        COLLECT_ALL,
        FAIL_FAST,
        Checkpoint,
        Health,
        Job,
        JobDetail,
        JobStatus,
        JobSummary,
        JobTypeInfo,
        PauseMode,
        QueueStats,
        Result,
        Retention,
        ScheduleInfo,
        StoredEvent,
        Strategy,
        Sub,
        WorkerInfo,
        all_succeeded,
        partition,
        success_count,
        threshold,
        values,
    )
    from djobs.queue import Queue
    from djobs.registry import job
    from djobs.retry import Backoff, RetryConfig
    from djobs.schedule import Schedule, cron, daily, every, weekly
    from djobs.storage import PeeweeStorage, PoolConfig, connect
    from djobs.worker import Worker
