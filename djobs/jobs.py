"""The domain: jobs, statuses, sub-jobs, fan-out results and read-only info records. No I/O here."""

from __future__ import annotations

import enum
import functools
import math
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from djobs.retry import Backoff

if TYPE_CHECKING:
    from djobs.info import (  # noqa: F401 - what `__getattr__` below gives, for type checkers
        Checkpoint,
        Health,
        JobDetail,
        JobSummary,
        JobTypeInfo,
        QueueStats,
        ScheduleInfo,
        StoredEvent,
        WorkerInfo,
    )

# The read-only records that look-ups return live in djobs/info.py and are made on first use: a process that
# only enqueues (`djobs enqueue`) needs none of them and skips creating their dataclasses, some milliseconds
# of its start-up. `djobs.jobs.Health` and `from djobs.jobs import Health` still work.
_RECORDS = frozenset(
    {"Checkpoint", "WorkerInfo", "QueueStats", "ScheduleInfo", "StoredEvent", "JobDetail", "JobSummary", "JobTypeInfo", "Health"}
)


def __getattr__(name: str) -> Any:
    if name in _RECORDS:
        from djobs import info

        return getattr(info, name)
    raise AttributeError(f"module 'djobs.jobs' has no attribute {name!r}")


_setattr = object.__setattr__


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


#: Attempts given back in a row (worker stop or pause, a lost database connection) before the job fails:
#: nothing a worker does can re-run a job in a tight loop. (Defined here, not in djobs/outcomes.py, so that
#: storage can use it without creating the worker's records: a producer never needs them.)
MAX_REFUNDS = 10


class PauseMode(enum.StrEnum):
    """GRACEFUL lets running work finish; AGGRESSIVE cancels running handlers."""

    GRACEFUL = "graceful"
    AGGRESSIVE = "aggressive"

    def __str__(self) -> str:
        return self.value


_id_lock = threading.Lock()
# Seeded from os.urandom; reseeded after fork so two processes never share a sequence of ids.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)
_id_last = [0, 0]  # the last id's millisecond and sequence


def new_id() -> str:
    """A time-ordered UUID (v7 layout) with a per-process sequence in its 12 `rand_a` bits, so ids made by one
    process sort in creation order even within a millisecond (claims break priority and time ties by id)."""
    with _id_lock:
        ms, seq, _ = _reserve(time.time_ns() // 1_000_000, 1)
    return _ids(ms, seq, 1)[0]


def new_ids(n: int) -> list[str]:
    """`n` ids as `new_id` makes them, taken under one lock and one clock reading: a batch's ids share their
    millisecond prefix, formatted once (half the cost of `n` calls to `new_id`)."""
    runs = []
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        while n > 0:  # 4,096 ids a millisecond at most: a big batch borrows the next ones
            ms, seq, take = _reserve(ms, n)
            runs.append((ms, seq, take))
            n -= take
    return [i for run in runs for i in _ids(*run)] if len(runs) != 1 else _ids(*runs[0])


def _reserve(ms: int, n: int) -> tuple[int, int, int]:
    """The next run of at most `n` sequence numbers within one millisecond, not before `ms`: (millisecond,
    first sequence number, how many). Called under `_id_lock`."""
    last_ms, seq = _id_last
    if ms <= last_ms:
        ms, seq = last_ms, seq + 1
        if seq > 0xFFF:  # this millisecond's sequence numbers are spent: borrow the next one
            ms, seq = ms + 1, 0
    else:
        seq = _random.getrandbits(8)  # a random start leaves room to count up
    take = min(n, 0x1000 - seq)
    _id_last[0], _id_last[1] = ms, seq + take - 1
    return ms, seq, take


def _ids(ms: int, seq: int, n: int) -> list[str]:
    """The ids of one millisecond's run: 48 bits of milliseconds, version 7, the 12-bit sequence number, then
    the variant bits 0b10 and 62 random bits."""
    head = f"{(ms >> 16) & 0xFFFFFFFF:08x}-{ms & 0xFFFF:04x}-7"
    bits = _random.getrandbits
    if n == 1:  # `new_id`: the comprehension below costs more than the id
        r = bits(62)
        return [f"{head}{seq:03x}-{r >> 48 | 0x8000:04x}-{r & 0xFFFFFFFFFFFF:012x}"]
    # The whole run as one number, one 76-bit place an id: its sequence number (12 bits), the variant (2) and 62
    # random bits, written in hex once and cut by one regular expression (0.63 -> 0.38 µs an id against slicing
    # the random parts and formatting each sequence number).
    clear, variant, ones, ramp = _run_masks(n)
    h = format(((bits(76 * n) & clear) | variant) + seq * ones + ramp, f"0{19 * n}x")
    return [f"{head}{a}-{b}-{c}" for a, b, c in _ID_TAIL.findall(h)]


_ID_TAIL = re.compile(r"(.{3})(.{4})(.{12})")


@functools.lru_cache(maxsize=16)
def _run_masks(n: int) -> tuple[int, int, int, int]:
    """For `n` 76-bit places side by side: the mask that keeps each one's 62 random bits, the variant 0b10 in
    each, a 1 in each one's sequence number (times the run's first number) and 0, 1, 2, ... in them (the rest)."""
    ones = int(("0" * 18 + "1") * n, 16)
    ramp = int("".join(f"{i:03x}{0:016x}" for i in range(n)), 16)
    return ((1 << 62) - 1) * ones, (1 << 63) * ones, ones << 64, ramp


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
    #: Seconds an attempt may run before it is cancelled and fails with JobTimeout (None: no limit of its own).
    timeout: float | None = None
    #: Groups jobs for per-key limits (a tenant, an account).
    key: str | None = None
    meta: dict[str, Any] | None = None
    #: The traceback of the last failed attempt.
    last_traceback: str | None = None
    #: Attempts given back in a row by stopping or paused workers (bounded).
    refunds: int = 0
    #: Why a waiting job waits: "fanout", "sleep" or "signal" (then `wait_signal` names it).
    wait_kind: str | None = None
    wait_signal: str | None = None
    #: The unique key stays held until then, whatever the status (idempotency window).
    unique_until: datetime | None = None
    #: The retry backoff of this job when it differs from its handler's.
    backoff: Backoff | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (datetimes as ISO-8601 UTC)."""
        from djobs.codec import jsonable

        return dict(jsonable(self))


@dataclass(frozen=True, init=False)
class Sub:
    """One sub-job of a fan-out, or one job for `enqueue_many`. Unset options take the job defaults."""

    type: str
    args: Any = None
    priority: int | None = None
    retries: int | None = None
    queue: str | None = None
    delay: timedelta | float | int | None = None
    unique: str | None = None

    def __init__(
        self, type: str, args: Any = None, priority: int | None = None, retries: int | None = None,  # noqa: A002
        queue: str | None = None, delay: timedelta | float | int | None = None, unique: str | None = None,
    ) -> None:  # fmt: skip
        # The generated frozen `__init__` sets each field through `object.__setattr__` (0.9 µs a Sub on a quiet
        # machine, a tenth of a batch enqueue's cost a job); the same signature, one call.
        _setattr(self, "__dict__", {"type": type, "args": args, "priority": priority, "retries": retries,
                                    "queue": queue, "delay": delay, "unique": unique})  # fmt: skip


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

    def decide(self, total: int, counts: dict[str, int]) -> str | None:
        """'succeeded', 'failed' or None (undecided) for a fan-out's sub-job status counts."""
        ok = counts.get("completed", 0)
        bad = counts.get("failed", 0) + counts.get("cancelled", 0)
        if self.kind == "collect_all":
            return "succeeded" if ok + bad >= total else None
        if self.kind == "fail_fast":
            if bad:
                return "failed"
            return "succeeded" if ok >= total else None
        if total - bad < self.required(total):
            return "failed"
        return "succeeded" if ok + bad >= total else None


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


def decide(strategy_text: str, total: int, counts: dict[str, int]) -> str | None:
    """A stored fan-out's decision from its strategy's text (what storage evaluates under its row lock)."""
    return strategy_from_str(strategy_text).decide(total, counts)


def values(results: list[Result]) -> list[Any]:
    return [r.value for r in results if r.ok]


def partition(results: list[Result]) -> tuple[list[Any], list[BaseException]]:
    return [r.value for r in results if r.ok], [r.error for r in results if r.error is not None]


def all_succeeded(results: list[Result]) -> bool:
    return all(r.ok for r in results)


def success_count(results: list[Result]) -> int:
    return sum(1 for r in results if r.ok)


class NewJob(NamedTuple):
    """A job about to be written: what `enqueue`, `enqueue_many`, fan-outs and schedules hand to storage.
    Values are already encoded (JSON text) and resolved against the handler's defaults; storage validates
    them (`djobs.validate.new_job`) before anything is written. A named tuple (cheap to build by the
    thousand) whose field order is the insert statement's parameter order."""

    id: str
    type: str
    queue: str
    args_json: str
    priority: int
    max_retries: int
    at: float | None = None  # absolute epoch seconds; else `delay` from the database's now
    delay: float = 0.0
    unique_key: str | None = None
    parent_id: str | None = None
    fanout_id: str | None = None
    fanout_pos: int | None = None
    timeout: float | None = None
    key: str | None = None
    meta_json: str | None = None
    unique_for: float | None = None
    backoff_json: str | None = None
    trace: str | None = None


@dataclass(frozen=True)
class Owner:
    """Who may write to a running job: the worker that claimed it, for that attempt. Every write after a
    claim is guarded by all three, so a worker that lost the job cannot overwrite what happened since."""

    job_id: str
    worker_id: str
    attempt: int


_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True)
class Rate:
    """At most `n` starts per `per` seconds (a token bucket holding at most n): `Rate(100, 60)`, or parse
    "100/m" with `Rate.parse`. `per` takes a timedelta or seconds."""

    n: float
    per: float = 1.0

    def __post_init__(self) -> None:
        per = self.per.total_seconds() if isinstance(self.per, timedelta) else self.per
        if isinstance(self.n, bool) or not isinstance(self.n, int | float) or not math.isfinite(self.n) or self.n <= 0:
            raise ValueError(f"a rate needs a positive number of starts, got {self.n!r}")
        if isinstance(per, bool) or not isinstance(per, int | float) or not math.isfinite(per) or per <= 0:
            raise ValueError(f"a rate needs a positive period, got {self.per!r}")
        if self.n > 1e9 or per > 366 * 86400:
            raise ValueError("rate out of range")
        object.__setattr__(self, "n", float(self.n))
        object.__setattr__(self, "per", float(per))

    @classmethod
    def parse(cls, value: str | Rate) -> Rate:
        """"10/s", "100/m", "5000/h", "2.5/s" (s, m, h; also sec, min, hour)."""
        if isinstance(value, Rate):
            return value
        if not isinstance(value, str) or "/" not in value:
            raise ValueError(f"bad rate {value!r}: expected N/s, N/m or N/h")
        n, _, unit = value.strip().partition("/")
        period = _PERIODS.get(unit.strip().lower())
        if period is None:
            raise ValueError(f"bad rate {value!r}: the period is s, m or h")
        try:
            count = float(n)
        except ValueError:
            raise ValueError(f"bad rate {value!r}: {n.strip()!r} is not a number") from None
        return cls(count, period)

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.per)
        n = f"{self.n:g}"
        return f"{n}/{unit}" if unit else f"{n}/{self.per:g}s"


@dataclass(frozen=True)
class Limits:
    """A queue's fleet-wide limits (None: no such limit): `running` caps the queue's running jobs across
    all workers, `key_running` per key; `rate`/`key_rate` cap how many start per period."""

    rate: Rate | None = None
    running: int | None = None
    key_rate: Rate | None = None
    key_running: int | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.rate, self.running, self.key_rate, self.key_running))


@dataclass(frozen=True)
class Retention:
    """How long finished jobs are kept, in seconds per status (None: forever). Stored in the database, so
    every worker's leader applies the same settings."""

    completed: float | None = None
    failed: float | None = None
    cancelled: float | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.completed, self.failed, self.cancelled))

    def to_json(self) -> dict[str, float | None]:
        return {"completed": self.completed, "failed": self.failed, "cancelled": self.cancelled}
