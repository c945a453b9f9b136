"""`Queue`: the library's front door — handlers, enqueue, look-ups, control, schedules, events, hooks.

    store = djobs.connect("sqlite:///djobs.db")
    queue = djobs.Queue(store)

    @queue.handler("send-email", queue="emails", retries=5)
    def send_email(ctx: djobs.Context, args: EmailArgs) -> None: ...

    job_id = queue.enqueue("send-email", EmailArgs(to="a@b"), delay=30)
    queue.worker(queues={"emails": 5}).run()

Every method calls named storage operations (`djobs.storage`), which validate what they write and map
driver errors to djobs errors; the Queue resolves handler defaults, encodes values and tells in-process
listeners.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from djobs import codec, tracing, validate
from djobs.api.control import ControlAPI
from djobs.api.events import EventAPI
from djobs.api.flow import FlowAPI
from djobs.api.limits import LimitAPI
from djobs.api.schedules import ScheduleAPI
from djobs.api.signals import SignalAPI
from djobs.errors import DuplicateJob, JobCancelledError, JobFailedError, JobNotFound, UnknownJobType
from djobs.events import (
    EventHub,
)
from djobs.jobs import Job, JobStatus, NewJob, Sub, new_id, new_ids
from djobs.registry import Handler, JobOptions, encode_args, encode_args_many, module_jobs
from djobs.retry import Backoff, to_seconds

if TYPE_CHECKING:
    from djobs.info import Checkpoint, Health, JobDetail, JobSummary, JobTypeInfo, QueueStats, StoredEvent
    from djobs.storage import PeeweeStorage
    from djobs.worker import Worker

#: Delays `new_jobs` groups jobs by value; any other (a user's odd object) by identity.
_PLAIN_DELAY = frozenset({type(None), int, float, timedelta})
#: How long a producer trusts what the database said about a job type it has no handler for.
TYPE_CACHE_SECONDS = 30.0
IF_EXISTS = ("raise", "return")


class Queue(ControlAPI, ScheduleAPI, EventAPI, LimitAPI, FlowAPI, SignalAPI):
    """Handlers, jobs and controls over one storage. Cheap to create; thread-safe.

    `strict=True` (the default) accepts job types this process has a handler for and types any worker
    registered in this database; `strict=False` enqueues any type by name (a producer with no handler
    code), with the defaults a worker registered for it, if any.
    """

    def __init__(
        self,
        storage: PeeweeStorage,
        *,
        strict: bool = True,
        event_buffer: int = 1000,
        event_retention: timedelta | float = timedelta(days=7),
        event_max_rows: int = 1_000_000,
    ) -> None:
        self.storage = storage
        storage.ensure_schema()
        self.strict = strict
        self.hub = EventHub(event_buffer)
        self.event_retention = to_seconds(event_retention)
        self.event_max_rows = event_max_rows
        self._handlers: dict[str, Handler] = {}
        self._remote: dict[str, tuple[float, JobOptions | None]] = {}

    # -- handlers ----------------------------------------------------------------------------------------
    def register(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        queue: str = "default",
        retries: int = 3,
        priority: int = 0,
        timeout: timedelta | float | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._handlers[name] = Handler.build(name, fn, JobOptions.make(name, queue, retries, priority, timeout, backoff))

    def handler(
        self,
        name: str,
        *,
        queue: str = "default",
        retries: int = 3,
        priority: int = 0,
        timeout: timedelta | float | None = None,
        backoff: Backoff | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name, fn, queue=queue, retries=retries, priority=priority, timeout=timeout, backoff=backoff)
            return fn

        return deco

    def get_handler(self, name: str) -> Handler:
        h = self._handlers.get(name) or module_jobs().get(name)
        if h is None:
            raise UnknownJobType(name)
        return h

    def job_types(self) -> list[str]:
        """The job types this process has handlers for."""
        return sorted({*self._handlers, *module_jobs()})

    def has_handler(self, name: str) -> bool:
        return name in self._handlers or name in module_jobs()

    def known_types(self) -> list[JobTypeInfo]:
        """Job types workers registered in this database, with their defaults."""
        return self.storage.known_types()

    def _remote_options(self, name: str) -> JobOptions | None:
        """The defaults a worker serving `name` registered (None: no worker has), read at most once every
        TYPE_CACHE_SECONDS: a process that enqueues jobs another process handles (a web app, say) pays no
        look-up per enqueue."""
        now = time.monotonic()
        cached = self._remote.get(name)
        if cached is not None and now - cached[0] < TYPE_CACHE_SECONDS:
            return cached[1]
        found = self.storage.known_types(name)
        # No backoff: a job that names none retries with its handler's, which the worker running it has.
        opts = JobOptions(found[0].queue, found[0].retries, found[0].priority, found[0].timeout) if found else None
        self._remote[name] = (now, opts)
        return opts

    def _options(self, name: str) -> tuple[Handler | None, JobOptions]:
        """The local handler (if any) and the defaults for jobs of this type."""
        h = self._handlers.get(name) or module_jobs().get(name)
        if h is not None:
            return h, h.options
        validate.name("job type", name)
        opts = self._remote_options(name)
        if opts is not None:
            return None, opts
        if self.strict:
            raise UnknownJobType(name)
        return None, JobOptions()

    # -- enqueue -----------------------------------------------------------------------------------------
    def new_job(
        self,
        name: str,
        args: Any = None,
        *,
        priority: int | None = None,
        retries: int | None = None,
        delay: timedelta | float | None = None,
        at: datetime | None = None,
        queue: str | None = None,
        unique: str | None = None,
        unique_for: timedelta | float | None = None,
        timeout: timedelta | float | None = None,
        key: str | None = None,
        meta: dict[str, Any] | None = None,
        backoff: Backoff | None = None,
        parent_id: str | None = None,
        fanout_id: str | None = None,
        fanout_pos: int | None = None,
    ) -> NewJob:
        """A job ready to write, its options resolved against the handler's defaults and checked
        (UnknownJobType, TypeError, ValueError: nothing is written)."""
        if unique_for is not None and unique is None:
            raise ValueError("unique_for needs a unique key (unique=...)")
        h, tpl = self._template(
            name, priority=priority, retries=retries, delay=delay, at=at, queue=queue, unique_for=unique_for,
            timeout=timeout, key=key, meta=meta, backoff=backoff, parent_id=parent_id, fanout_id=fanout_id,
        )  # fmt: skip
        return _made(new_id(), tpl, h.check_args(args) if h is not None else encode_args(args), unique, fanout_pos)

    def new_jobs(
        self, subs: list[Sub], *, retries: int | None = None, queue: str | None = None, parent_id: str | None = None,
        fanout_id: str | None = None,
    ) -> list[NewJob]:  # fmt: skip
        """`new_job` for each sub (`retries` and `queue` where the sub leaves them unset; fan-out positions when
        `fanout_id` is given). Options are resolved once per distinct setting, not once per job: a batch of
        a thousand jobs of one type resolves and checks its options once."""
        templates: dict[Any, tuple[Callable[[str, str, str | None, int | None], NewJob], Any]] = {}
        out = []
        subs = subs if isinstance(subs, list | tuple) else list(subs)  # a generator is taken as well
        try:
            args = [s.args for s in subs]
        except AttributeError:
            bad = next(s for s in subs if not isinstance(s, Sub))
            raise TypeError(f"a batch takes djobs.Sub items, got {type(bad).__name__}: {bad!r:.80}") from None
        ids = new_ids(len(subs))
        texts = encode_args_many(args)
        for pos, s in enumerate(subs):
            if type(s.type) is str and s.priority is None and s.retries is None and s.queue is None and s.delay is None:
                setting: Any = s.type  # the usual sub, only a type: the batch's settings apply (no tuple to make)
            else:  # types too: True equals 1 but is no priority
                r = retries if s.retries is None else s.retries
                delay = s.delay
                setting = (s.type, queue if s.queue is None else s.queue, s.priority, type(s.priority), r, type(r),
                           delay if type(delay) in _PLAIN_DELAY else id(delay))  # fmt: skip
            try:
                made = templates.get(setting)
            except TypeError:  # an unhashable name: `_template` says what is wrong with it
                made = None
            if made is None:
                h, tpl = self._template(
                    s.type, priority=s.priority, retries=retries if s.retries is None else s.retries, delay=s.delay,
                    queue=queue if s.queue is None else s.queue, parent_id=parent_id, fanout_id=fanout_id,
                )  # fmt: skip
                # Args a handler takes as they come need no check beyond encoding.
                made = templates[setting] = (_maker(tpl), None if h is None or h.args_type is Any else h.check_encoded)
            make, check = made
            if check is not None:
                check(s.args, texts[pos])
            out.append(make(ids[pos], texts[pos], s.unique, None if fanout_id is None else pos))
        return out

    def _template(
        self,
        name: str,
        *,
        priority: int | None = None,
        retries: int | None = None,
        delay: timedelta | float | None = None,
        at: datetime | None = None,
        queue: str | None = None,
        unique_for: timedelta | float | None = None,
        timeout: timedelta | float | None = None,
        key: str | None = None,
        meta: dict[str, Any] | None = None,
        backoff: Backoff | None = None,
        parent_id: str | None = None,
        fanout_id: str | None = None,
    ) -> tuple[Handler | None, NewJob]:
        """Everything of a new job but its id, args, unique key and fan-out position: the type's handler (for
        the args) and a NewJob to copy those into."""
        h, opts = self._options(name)
        if at is not None:
            abs_at, rel = validate.when("at", at), 0.0
        else:
            abs_at, rel = None, validate.seconds("delay", to_seconds(delay), allow_negative=True)
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"meta must be a dict (a JSON object), got {type(meta).__name__}")
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a djobs.Backoff, got {type(backoff).__name__}")
        for k in meta or ():
            validate.name("meta key", k)  # the same limits as the `list_jobs(meta=)` filter, so it can be found
        return h, NewJob(
            id="",
            type=name,
            queue=opts.queue if queue is None else queue,
            args_json="",
            priority=opts.priority if priority is None else validate.int32("priority", priority),
            max_retries=opts.retries if retries is None else validate.int32("retries", retries, minimum=0),
            at=abs_at,
            delay=rel,
            parent_id=parent_id,
            fanout_id=fanout_id,
            timeout=opts.timeout if timeout is None else to_seconds(timeout),
            key=key,
            meta_json=None if meta is None else encode_args(meta),
            unique_for=None if unique_for is None else to_seconds(unique_for),
            backoff_json=None if backoff is None else codec.dumps(backoff.to_json()),
        )

    def enqueue(
        self,
        name: str,
        args: Any = None,
        *,
        priority: int | None = None,
        retries: int | None = None,
        delay: timedelta | float | None = None,
        at: datetime | None = None,
        queue: str | None = None,
        unique: str | None = None,
        unique_for: timedelta | float | None = None,
        if_exists: str = "raise",
        timeout: timedelta | float | None = None,
        key: str | None = None,
        meta: dict[str, Any] | None = None,
        backoff: Backoff | None = None,
    ) -> str:
        """Store a job; returns its id. Unknown types raise UnknownJobType, bad args TypeError, values
        out of range ValueError (nothing written). A job holding `unique` (active, or inside its
        `unique_for` window) raises DuplicateJob with `.existing_id`, or with `if_exists="return"` its id
        is returned instead."""
        if if_exists not in IF_EXISTS:
            raise ValueError(f"if_exists must be one of {', '.join(IF_EXISTS)}, got {if_exists!r}")
        job = self.new_job(
            name, args, priority=priority, retries=retries, delay=delay, at=at, queue=queue, unique=unique,
            unique_for=unique_for, timeout=timeout, key=key, meta=meta, backoff=backoff,
        )  # fmt: skip
        try:
            if tracing.on:
                with tracing.producing([job]) as traced:
                    self.storage.insert_jobs(traced)
            else:
                self.storage.insert_jobs([job])
        except DuplicateJob as exc:
            if if_exists == "return" and exc.existing_id is not None:
                return exc.existing_id
            raise
        return job.id

    def enqueue_many(self, subs: list[Sub]) -> list[str]:
        """Enqueue many jobs in one transaction (all or none)."""
        jobs = self.new_jobs(subs)
        if jobs and tracing.on:
            with tracing.producing(jobs) as traced:
                self.storage.insert_jobs(traced)
        elif jobs:
            self.storage.insert_jobs(jobs)
        return [j.id for j in jobs]

    # -- workers -----------------------------------------------------------------------------------------
    def worker(self, **options: Any) -> Worker:
        from djobs.worker import Worker

        return Worker(self, **options)

    # -- look up -----------------------------------------------------------------------------------------
    def get_job(self, job_id: str) -> Job | None:
        return self.storage.get_job(job_id)

    def _must(self, job_id: str) -> Job:
        job = self.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def result(self, job_id: str, timeout: timedelta | float | None = None) -> Any:
        """Wait for the job to finish; its value, or JobFailedError / JobCancelledError / TimeoutError."""
        deadline = None if timeout is None else time.monotonic() + to_seconds(timeout)
        pause = 0.005
        while True:
            job = self._must(job_id)
            if job.status == JobStatus.COMPLETED:
                return job.result
            if job.status == JobStatus.FAILED:
                raise JobFailedError(job)
            if job.status == JobStatus.CANCELLED:
                raise JobCancelledError(job)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.status.value}")
            wait = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(wait)
            pause = min(0.1, pause * 1.5)

    def list_jobs(
        self,
        status: str | JobStatus | None = None,
        queue: str | None = None,
        type: str | None = None,  # noqa: A002 - matches the CLI option
        limit: int = 50,
        offset: int = 0,
        meta: dict[str, Any] | None = None,
    ) -> list[Job]:
        """Jobs newest first, filtered (`meta`: jobs whose meta holds each of these key/value pairs)."""
        return self.storage.list_jobs(_status(status), queue, type, limit, offset, meta)

    def job_summaries(
        self,
        status: str | JobStatus | None = None,
        queue: str | None = None,
        type: str | None = None,  # noqa: A002
        limit: int = 50,
        offset: int = 0,
        preview: int = 200,
        meta: dict[str, Any] | None = None,
    ) -> list[JobSummary]:
        """Like list_jobs, but args and errors as bounded previews: what listings and dashboards page."""
        return self.storage.job_summaries(_status(status), queue, type, limit, offset, preview, meta)

    def count_jobs(
        self, status: str | JobStatus | None = None, queue: str | None = None, type: str | None = None,  # noqa: A002
        meta: dict[str, Any] | None = None,
    ) -> int:  # fmt: skip
        return self.storage.count_jobs(_status(status), queue, type, meta)

    def sub_jobs(self, job_id: str, limit: int | None = None) -> list[Job]:
        return self.storage.sub_jobs(job_id, limit)

    def count_sub_jobs(self, job_id: str) -> int:
        return self.storage.count_sub_jobs(job_id)

    def job_detail(self, job_id: str, events: int = 20, sub_jobs: int = 200) -> JobDetail:
        """The job, its checkpoints, its first `sub_jobs` sub-jobs and its newest `events` events (oldest
        first): what `inspect ID`, the TUI's detail screen and the web UI's job view show. JobNotFound if
        there is no such job."""
        job = self._must(job_id)
        subs = self.sub_jobs(job_id, limit=sub_jobs + 1)
        more = max(0, self.count_sub_jobs(job_id) - sub_jobs) if len(subs) > sub_jobs else 0
        from djobs.info import JobDetail

        return JobDetail(job, self.checkpoints(job_id), subs[:sub_jobs], self.job_events(job_id, events), more)

    def job_events(self, job_id: str, newest: int = 20) -> list[StoredEvent]:
        """The newest `newest` stored events of one job, oldest first."""
        return self.storage.job_events(job_id, newest)

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        return self.storage.checkpoints(job_id)

    def queue_stats(self) -> list[QueueStats]:
        return self.storage.queue_stats()

    def queue_lag(self) -> dict[str, float]:
        """Per queue with due pending jobs: seconds its oldest due job has waited."""
        return self.storage.queue_lag()

    def health(self, max_lag: timedelta | float = timedelta(minutes=1), queues: list[str] | None = None) -> Health:
        """Not ok when the database does not answer, when a queue with due jobs has no live worker, or when
        its oldest due job has waited longer than `max_lag`. Each problem is one sentence."""
        from djobs.health import check

        return check(self, to_seconds(max_lag), queues)

    def purge(
        self,
        statuses: tuple[str, ...] | list[str] = ("completed", "failed", "cancelled"),
        older_than: timedelta | float = timedelta(days=7),
        queue: str | None = None,
    ) -> int:
        """Delete finished jobs (with their checkpoints, signals, events and fan-out records) that finished
        more than `older_than` ago, in bounded batches."""
        return self.storage.purge(tuple(statuses), to_seconds(older_than), queue)

    def delete_jobs(self, job_ids: list[str]) -> int:
        """Delete finished jobs by id (unfinished ones are skipped: cancel them first); how many."""
        return self.storage.delete_jobs(list(job_ids))


def _status(status: str | JobStatus | None) -> str | None:
    return status.value if isinstance(status, JobStatus) else status


def _made(job_id: str, tpl: NewJob, args_json: str, unique: str | None, fanout_pos: int | None) -> NewJob:
    """A template's job with its own id, args, unique key and position (fields in order)."""
    return _maker(tpl)(job_id, args_json, unique, fanout_pos)


def _maker(tpl: NewJob) -> Callable[[str, str, str | None, int | None], NewJob]:
    """`_made` for one template, its fixed fields unpacked once: a batch makes one job per sub from it, one tuple
    built from eighteen names (unpacking slices of the template into it builds a list first)."""
    _, type_, queue, _, priority, retries, at, delay, _, parent, fanout, _, timeout, key, meta, ufor, backoff, trace = tpl

    def make(job_id: str, args_json: str, unique: str | None, fanout_pos: int | None) -> NewJob:
        return _new_tuple(NewJob, (job_id, type_, queue, args_json, priority, retries, at, delay, unique, parent, fanout,
                                   fanout_pos, timeout, key, meta, ufor, backoff, trace))  # fmt: skip

    return make


_new_tuple = tuple.__new__


__all__ = ["Queue"]
