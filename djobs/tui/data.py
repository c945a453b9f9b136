"""What the dashboard reads from the database, in one place, with no Textual in it.

`Poller.snapshot()` makes every read a main-screen refresh needs and returns them as one `Snapshot`; it
runs on a worker thread. `JobFilter.parse()` reads the filter bar's text. `DetailPoller` does the same for
the job detail screen. Only the public `djobs.Queue` API is used, so the dashboard works against any
database the library can open, from any machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from djobs import codec, metafilter
from djobs.errors import JobNotFound
from djobs.jobs import (
    STATUS_VALUES,
    Job,
    JobDetail,
    JobStatus,
    Limits,
    QueueStats,
    ScheduleInfo,
    StoredEvent,
    WorkerInfo,
)

if TYPE_CHECKING:
    import djobs

#: Rows shown in the jobs table: a window of the newest matching jobs, so a table over a million jobs
#: costs the same as one over a hundred (DataTable takes about 1 s for 10,000 rows).
JOB_WINDOW = 100
#: Lines kept in the live event log.
EVENT_WINDOW = 500
#: At most this many new events are read per refresh; when more arrived, the log skips ahead to the newest
#: ones and says how many it skipped, so a worker draining thousands of jobs a second cannot make the
#: dashboard fall behind.
EVENTS_PER_POLL = 100


@dataclass(frozen=True)
class JobFilter:
    """Filter for the jobs table: `status:failed queue:emails type:send-email` pick exactly; `meta:tenant=42`
    picks jobs whose meta holds that pair (`meta:count:=3` for a JSON value, see `djobs.metafilter`); a
    bare word is a status when it names one, otherwise it matches part of the job type or of the queue
    name (`mail` finds type `send-email` and queue `emails`). Several words must all match."""

    status: str | None = None
    queue: str | None = None
    type: str | None = None
    #: Bare words, lower case: each matches part of a job's type or queue.
    words: tuple[str, ...] = ()
    #: Meta pairs the jobs must hold: (key, the value as JSON text), in the order typed.
    meta: tuple[tuple[str, str], ...] = ()
    #: Which window of `JOB_WINDOW` rows: 0 the newest, 1 the next older ones… (`]` and `[` in the table).
    page: int = 0

    @classmethod
    def parse(cls, text: str) -> JobFilter:
        """Read the filter bar: `key:value` (or `key=value`) words and bare words. Raises ValueError on an
        unknown key or status."""
        values: dict[str, str] = {}
        words: list[str] = []
        meta: dict[str, str] = {}
        for word in text.split():
            key, sep, value = word.partition(":")
            if not sep:
                key, sep, value = word.partition("=")
            if sep:
                key = key.lower()
                if key in ("s", "st"):
                    key = "status"
                elif key in ("q",):
                    key = "queue"
                elif key in ("t", "job", "kind"):
                    key = "type"
                elif key == "m":
                    key = "meta"
                if key not in ("status", "queue", "type", "meta"):
                    raise ValueError(f"unknown filter {key!r}: use status:, queue:, type: or meta:")
                if not value:
                    raise ValueError(f"{key}: needs a value ({key}:NAME)")
                if key == "meta":
                    meta_key, meta_value = metafilter.parse(value)
                    meta[meta_key] = codec.dumps(meta_value)
                    continue
                if key == "status" and value.lower() not in STATUS_VALUES:
                    raise ValueError(f"unknown status {value!r}: one of {', '.join(STATUS_VALUES)}")
                values[key] = value.lower() if key == "status" else value
            elif word.lower() in STATUS_VALUES:
                values["status"] = word.lower()
            elif word.lower() not in words:
                words.append(word.lower())
        return cls(
            status=values.get("status"),
            queue=values.get("queue"),
            type=values.get("type"),
            words=tuple(words),
            meta=tuple(meta.items()),
        )

    def describe(self) -> str:
        parts = [
            f"{k}={v}" for k, v in (("status", self.status), ("queue", self.queue), ("type", self.type)) if v
        ]
        parts += [f"meta.{k}={_meta_text(v)}" for k, v in self.meta]
        return " ".join([*parts, *(f"~{w}" for w in self.words)])

    def meta_filter(self) -> dict[str, Any] | None:
        """The meta pairs as `queue.list_jobs(meta=...)` takes them (None: no meta filter)."""
        return {k: json.loads(v) for k, v in self.meta} or None

    def matches(self, job_type: str, queue: str) -> bool:
        """Whether a job of this type in this queue passes the type, queue and word parts of the filter."""
        if self.type is not None and job_type != self.type:
            return False
        if self.queue is not None and queue != self.queue:
            return False
        return all(w in job_type.lower() or w in queue.lower() for w in self.words)

    def lookups(self, types: Iterable[str], queues: Iterable[str]) -> list[tuple[str | None, str | None]]:
        """The (type, queue) pairs to list so that together they hold every matching job, for the given
        known type and queue names: each word is met by the pair's type or its queue. [(type, queue)] with
        the exact parts alone when there are no words; [] when no known name can meet the words."""
        if not self.words:
            return [(self.type, self.queue)]
        type_options: list[str | None] = [self.type] if self.type is not None else [None, *sorted(set(types))]
        queue_options: list[str | None] = (
            [self.queue] if self.queue is not None else [None, *sorted(set(queues))]
        )
        pairs: list[tuple[str | None, str | None]] = []
        for t in type_options:
            for q in queue_options:
                if all(
                    (t is not None and w in t.lower()) or (q is not None and w in q.lower())
                    for w in self.words
                ):
                    pairs.append((t, q))
        # A pair that a broader one (the same type with any queue, or the same queue with any type) already
        # covers would only list the same jobs again.
        return [
            (t, q)
            for t, q in pairs
            if not (
                (t is not None and q is not None and self.queue is None and (t, None) in pairs)
                or (t is not None and q is not None and self.type is None and (None, q) in pairs)
            )
        ]

    def __bool__(self) -> bool:
        return bool(self.status or self.queue or self.type or self.words or self.meta or self.page)


def _meta_text(value_json: str) -> str:
    value = json.loads(value_json)
    return value if isinstance(value, str) else f"{value_json} (JSON)"


@dataclass
class EventBatch:
    events: list[StoredEvent] = field(default_factory=list)
    skipped: int = 0


@dataclass
class Snapshot:
    """One consistent-enough picture of the system for one refresh of the main screen (the per-queue
    counts are read apart: `Poller.counts()`)."""

    workers: list[WorkerInfo]
    jobs: list[Job]
    schedules: list[ScheduleInfo]
    events: EventBatch
    job_filter: JobFilter
    taken_at: datetime
    #: Said beside the filter when its words match more names than one refresh lists.
    filter_note: str = ""


@dataclass(frozen=True)
class QueueLimits:
    """A queue's limits and how many due jobs each holds back now (`queue.held_back`: running, rate,
    key_running, key_rate)."""

    limits: Limits
    held_back: dict[str, int]


#: A filter word matching many names lists at most this many (type, queue) pairs per refresh.
MAX_LOOKUPS = 20


#: `queue_stats()` counts every job (about 0.1 s for 200,000 rows on SQLite, where this process does the
#: work; on PostgreSQL the server does it), so it is re-read less often than the rest: at most STATS_DUTY
#: of one core in this process, and at most DB_DUTY of the time waiting on the database.
STATS_DUTY = 0.01
DB_DUTY = 0.2


def next_due(started: float, cpu: float, wall: float) -> float:
    """When an expensive read that took `cpu` thread-CPU and `wall` seconds may run again."""
    return started + max(cpu / STATS_DUTY, wall / DB_DUTY)


class Poller:
    """Reads the main screen's data. `snapshot()` and `counts()` may run at the same time on two threads;
    each of them runs one call at a time.

    Cheap reads (the newest jobs, new events, workers, schedules) happen on every poll (`snapshot`). The
    per-queue counts cost time proportional to the table, so `counts()` is read apart and spaced by
    `next_due()`: the refresh stays cheap with a million jobs, the counts just lag a little."""

    def __init__(
        self,
        queue: djobs.Queue,
        *,
        job_window: int = JOB_WINDOW,
        event_window: int = EVENT_WINDOW,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.queue = queue
        self.job_window = job_window
        self.event_window = event_window
        self.clock = clock or (lambda: datetime.now(UTC))
        self._event_cursor: int | None = None
        #: The last counts read (replaced whole, never changed in place: the snapshot thread reads the
        #: queue names from it).
        self.stats: list[QueueStats] = []
        self._stats_due = 0.0
        self.stats_cost = 0.0
        #: Job type names known so far (handlers here, jobs and schedules seen): with the types workers
        #: registered in the database, what bare filter words are matched against.
        self.type_names: set[str] = set()
        #: Types workers registered (`queue.known_types()`), read with the counts (replaced whole).
        self.registered_types: frozenset[str] = frozenset()
        #: Per limited queue, its limits and how many due jobs each limit holds back (read with the counts:
        #: the held-back count looks at the queue's due jobs; replaced whole).
        self.limits: dict[str, QueueLimits] = {}

    def snapshot(self, job_filter: JobFilter) -> Snapshot:
        """Everything of the main screen but the counts: a handful of bounded reads."""
        q = self.queue
        workers = list(q.workers())
        schedules = list(q.schedules())
        if not self.type_names:
            self.type_names.update(q.job_types())
        self.type_names.update(s.job for s in schedules)
        lookups = job_filter.lookups(self.type_names | self.registered_types, [st.name for st in self.stats])
        jobs = self.jobs(job_filter, lookups[:MAX_LOOKUPS])
        note = f"first {MAX_LOOKUPS} of {len(lookups)} matching names" if len(lookups) > MAX_LOOKUPS else ""
        events = self.new_events()
        return Snapshot(workers, jobs, schedules, events, job_filter, self.clock(), note)

    def counts_due(self) -> bool:
        return time.monotonic() >= self._stats_due

    def counts(self) -> list[QueueStats]:
        """Per-queue counts by status (and the job types workers registered, which change as rarely); the
        next read is due once `next_due()` allows."""
        started, cpu = time.monotonic(), time.thread_time()
        stats = list(self.queue.queue_stats())
        self.registered_types = frozenset(t.name for t in self.queue.known_types())
        self.limits = {
            name: QueueLimits(lim, self.queue.held_back(name)) for name, lim in self.queue.all_limits().items()
        }
        self.stats_cost = time.monotonic() - started
        self._stats_due = next_due(started, time.thread_time() - cpu, self.stats_cost)
        self.stats = stats
        return stats

    def jobs(self, job_filter: JobFilter, lookups: list[tuple[str | None, str | None]]) -> list[Job]:
        """The window of newest jobs the filter selects: one listing per (type, queue) pair of
        `JobFilter.lookups()`, merged newest first."""
        window, page, meta = self.job_window, job_filter.page, job_filter.meta_filter()
        if len(lookups) == 1:
            t, qn = lookups[0]
            found = self.queue.list_jobs(
                status=job_filter.status, queue=qn, type=t, limit=window, offset=page * window, meta=meta
            )
        else:
            merged: dict[str, Job] = {}
            for t, qn in lookups:
                for job in self.queue.list_jobs(
                    status=job_filter.status, queue=qn, type=t, limit=(page + 1) * window, meta=meta
                ):
                    merged[job.id] = job
            newest = sorted(merged.values(), key=lambda j: (j.created_at, j.id), reverse=True)
            found = newest[page * window : (page + 1) * window]
        self.type_names.update(job.type for job in found)
        return list(found)

    def new_events(self) -> EventBatch:
        """Events written since the last call (the last `event_window` of them on the first call)."""
        q = self.queue
        latest = int(q.latest_event_id())
        batch = EventBatch()
        if self._event_cursor is None:
            self._event_cursor = max(0, latest - min(self.event_window, EVENTS_PER_POLL))
        elif latest - self._event_cursor > EVENTS_PER_POLL:
            batch.skipped = latest - EVENTS_PER_POLL - self._event_cursor
            self._event_cursor = latest - EVENTS_PER_POLL
        if latest <= self._event_cursor:
            if latest < self._event_cursor:  # the log was purged or the database replaced
                self._event_cursor = latest
            return batch
        batch.events = list(q.events_since(self._event_cursor, limit=EVENTS_PER_POLL))
        if batch.events:
            self._event_cursor = max(ev.id for ev in batch.events)
        return batch


@dataclass
class SubJobNode:
    job: Job
    children: list[SubJobNode]
    more: int = 0  # children not shown


@dataclass
class Detail:
    """What the detail screen shows: the library's `JobDetail`, the sub-job tree grown from its first
    level, and (when the job is not running) why not."""

    record: JobDetail
    sub_jobs: list[SubJobNode]
    why: list[str]
    taken_at: datetime

    @property
    def job(self) -> Job:
        return self.record.job


class DetailPoller:
    """Reads one job for the detail screen through `queue.job_detail()`, then the sub-jobs of its sub-jobs
    (a few levels, a bounded number of reads) and, when it is not running, why not."""

    SUB_JOBS_PER_LEVEL = 100
    SUB_JOB_DEPTH = 3
    RECENT_EVENTS = 30
    #: sub_jobs() reads per refresh below the first level: a wide fan-out shows some grandchildren only.
    SUB_JOB_QUERIES = 40

    def __init__(self, queue: djobs.Queue, job_id: str, clock: Callable[[], datetime] | None = None) -> None:
        self.queue = queue
        self.job_id = job_id
        self.clock = clock or (lambda: datetime.now(UTC))
        self._budget = 0
        self._why: list[str] = []
        self._why_key: tuple[JobStatus, int] | None = None
        self._why_due = 0.0

    def detail(self) -> Detail | None:
        """The job's detail, or None when there is no such job (any more)."""
        q = self.queue
        try:
            record = q.job_detail(self.job_id, events=self.RECENT_EVENTS, sub_jobs=self.SUB_JOBS_PER_LEVEL)
        except JobNotFound:
            return None
        self._budget = self.SUB_JOB_QUERIES
        tree = [SubJobNode(sub, *self._children(sub.id, depth=2)) for sub in record.sub_jobs]
        job = record.job
        why: list[str] = []
        if job.status is not JobStatus.RUNNING:
            # The explanation counts the queues too; like the summary, re-read it only as often as its
            # cost allows, unless the job's status changed.
            started, cpu = time.monotonic(), time.thread_time()
            key = (job.status, job.attempt)
            if key != self._why_key or started >= self._why_due:
                self._why = _why(q, self.job_id, self.clock())
                self._why_key = key
                self._why_due = next_due(started, time.thread_time() - cpu, time.monotonic() - started)
            why = self._why
        return Detail(record, tree, why, self.clock())

    def _children(self, job_id: str, depth: int) -> tuple[list[SubJobNode], int]:
        if depth > self.SUB_JOB_DEPTH or self._budget <= 0:
            return [], 0
        self._budget -= 1
        limit = self.SUB_JOBS_PER_LEVEL
        subs = self.queue.sub_jobs(job_id, limit=limit + 1)
        more = self.queue.count_sub_jobs(job_id) - limit if len(subs) > limit else 0
        return [SubJobNode(sub, *self._children(sub.id, depth + 1)) for sub in subs[:limit]], more


def _why(queue: djobs.Queue, job_id: str, now: datetime) -> list[str]:
    try:
        from djobs.explain import why
    except ImportError:  # the explanation module is optional for the dashboard
        return []
    try:
        return [str(line) for line in why(queue, job_id, now=now)]
    except Exception as exc:  # an explanation that fails must not take the detail screen down
        return [f"(could not explain: {exc})"]


def close_connection(queue: djobs.Queue) -> None:
    """Close the calling thread's database connection before the thread ends (on PostgreSQL the pool
    would otherwise count it as in use for good)."""
    try:
        queue.storage.reset_connection()
    except Exception:  # best effort on the way out
        pass
