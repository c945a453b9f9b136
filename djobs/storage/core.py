"""`PeeweeStorage`: every read and write djobs makes, on SQLite or PostgreSQL, as named operations.

    store = djobs.connect("sqlite:///djobs.db")          # or "postgresql://user@host/db?schema=jobs"
    store = djobs.PeeweeStorage(my_peewee_db)            # wrap a database you already have

The operations live in one module per concern (jobs, claims, checkpoints, fan-outs, control, workers,
schedules, events, stats, flow, signals); each holds its SQL for both dialects side by side and takes and returns domain
records (`djobs.jobs`, `djobs.outcomes`). Driver errors become djobs errors in `errors.py`: a public
operation raises `StorageUnavailable` when the database is away, `DuplicateJob` for a held unique key,
`ValueError`/`TypeError` for values outside `djobs.validate`'s limits — never a driver exception.
"""

from __future__ import annotations

from djobs.storage.checkpoints import CheckpointOps
from djobs.storage.control import ControlOps
from djobs.storage.events import EventOps
from djobs.storage.fanouts import FanOutOps
from djobs.storage.flow import FlowOps
from djobs.storage.fused import FusedOps
from djobs.storage.jobs import JobOps
from djobs.storage.limit_reads import LimitReadOps
from djobs.storage.limits import LimitOps
from djobs.storage.schedules import ScheduleOps
from djobs.storage.signals import SignalOps
from djobs.storage.stats import StatsOps
from djobs.storage.workers import WorkerOps


class PeeweeStorage(
    FlowOps, JobOps, FusedOps, LimitOps, LimitReadOps, CheckpointOps, FanOutOps, ControlOps, WorkerOps, ScheduleOps,
    EventOps, StatsOps, SignalOps,
):
    """djobs state in one Peewee database (SQLite or PostgreSQL)."""
