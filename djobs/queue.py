"""`Queue`: the library's front door — handlers, enqueue, look-ups, control, schedules, events, hooks.

    store = djobs.connect("sqlite:///djobs.db")
    queue = djobs.Queue(store)

    @queue.handler("send-email", queue="emails", retries=5)
    def send_email(ctx: djobs.Context, args: EmailArgs) -> None: ...

    job_id = queue.enqueue("send-email", EmailArgs(to="a@b"), delay=30)
    queue.worker(queues={"emails": 5}).run()
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from djobs import codec
from djobs.errors import (
    DuplicateJob,
    JobCancelledError,
    JobFailedError,
    JobNotFound,
    UnknownJobType,
)
from djobs.events import (
    CustomEvent,
    Event,
    EventBus,
    JobEvent,
    JobPaused,
    JobResumed,
    QueuePaused,
    QueueResumed,
    Subscription,
    WorkerPaused,
    WorkerResumed,
    event_kind,
)
from djobs.jobs import (
    Checkpoint,
    Job,
    JobDetail,
    JobStatus,
    PauseMode,
    QueueStats,
    ScheduleInfo,
    StoredEvent,
    Sub,
    WorkerInfo,
    from_epoch,
    to_epoch,
)
from djobs.registry import Handler, JobOptions, module_jobs
from djobs.retry import to_seconds
from djobs.schedule import Schedule, parse_spec
from djobs.storage import PeeweeStorage, new_id
from djobs.storage.sql import COLS, JOB_COLS, TERMINAL

if TYPE_CHECKING:
    from djobs.context import Context
    from djobs.worker import Worker

log = logging.getLogger("djobs")

_IDX = {c: i for i, c in enumerate(JOB_COLS)}


def job_from_row(row: Any) -> Job:
    g = row.__getitem__
    progress = g(_IDX["progress"])
    return Job(
        id=g(0),
        type=g(1),
        queue=g(2),
        args=codec.loads(g(3)),
        priority=g(4),
        status=JobStatus(g(5)),
        attempt=g(6),
        max_retries=g(7),
        last_error=g(8),
        result=codec.loads(g(9)),
        run_at=from_epoch(g(10)),
        started_at=from_epoch(g(11)),
        completed_at=from_epoch(g(12)),
        created_at=from_epoch(g(13)),  # type: ignore[arg-type]
        updated_at=from_epoch(g(14)),  # type: ignore[arg-type]
        last_heartbeat_at=from_epoch(g(15)),
        locked_by=g(16),
        unique_key=g(17),
        parent_id=g(18),
        paused_at=from_epoch(g(_IDX["paused_at"])),
        pause_reason=g(_IDX["pause_reason"]),
        progress=codec.loads(progress) if progress else None,
    )


def _stored_event(r: Any) -> StoredEvent:
    return StoredEvent(int(r[0]), from_epoch(r[1]) or datetime.now(UTC), r[2], r[3], r[4], r[5], codec.loads(r[6]) or {})


def _when(delay: timedelta | float | int | None, at: datetime | None) -> tuple[float | None, float]:
    """(absolute epoch or None, relative delay seconds) for the insert statement."""
    if at is not None:
        if not isinstance(at, datetime):
            raise TypeError("at= takes a datetime")
        return to_epoch(at), 0.0
    return None, to_seconds(delay)


class Queue:
    """Handlers, jobs and controls over one storage. Cheap to create; thread-safe."""

    def __init__(
        self,
        storage: PeeweeStorage,
        *,
        event_buffer: int = 1000,
        event_retention: timedelta | float = timedelta(days=7),
        event_max_rows: int = 1_000_000,
    ) -> None:
        self.storage = storage
        storage.ensure_schema()
        self._handlers: dict[str, Handler] = {}
        self._bus = EventBus(event_buffer)
        self.event_retention = to_seconds(event_retention)
        self.event_max_rows = event_max_rows
        self._hooks: dict[str, list[Callable[..., Any]]] = {"start": [], "complete": [], "fail": [], "retry": []}

    # -- handlers ----------------------------------------------------------------------------------------
    def register(
        self, name: str, fn: Callable[..., Any], *, queue: str = "default", retries: int = 3, priority: int = 0
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self._handlers[name] = Handler.build(name, fn, JobOptions(queue, retries, priority))

    def handler(
        self, name: str, *, queue: str = "default", retries: int = 3, priority: int = 0
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name, fn, queue=queue, retries=retries, priority=priority)
            return fn

        return deco

    def get_handler(self, name: str) -> Handler:
        h = self._handlers.get(name) or module_jobs().get(name)
        if h is None:
            raise UnknownJobType(name)
        return h

    def job_types(self) -> list[str]:
        return sorted({*self._handlers, *module_jobs()})

    def has_handler(self, name: str) -> bool:
        return name in self._handlers or name in module_jobs()

    # -- enqueue -----------------------------------------------------------------------------------------
    def _row(
        self,
        name: str,
        args: Any,
        *,
        priority: int | None,
        retries: int | None,
        delay: timedelta | float | int | None,
        at: datetime | None,
        queue: str | None,
        unique: str | None,
        parent_id: str | None = None,
        fanout_id: str | None = None,
        fanout_pos: int | None = None,
    ) -> tuple[Any, ...]:
        h = self.get_handler(name)
        args_json = h.check_args(args)
        abs_at, rel = _when(delay, at)
        n_retries = h.options.retries if retries is None else int(retries)
        if n_retries < 0:
            raise ValueError("retries must be >= 0")
        return (
            new_id(),
            name,
            queue or h.options.queue,
            args_json,
            h.options.priority if priority is None else int(priority),
            n_retries,
            abs_at,
            rel,
            unique,
            parent_id,
            fanout_id,
            fanout_pos,
        )

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        from djobs.storage import TRANSIENT_ERRORS

        keys = [row[8] for row in rows if row[8] is not None]
        if len(keys) != len(set(keys)):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise DuplicateJob(dup, None)
        for attempt in range(3):
            try:
                self.storage.run(lambda: self.storage.insert_jobs(rows), what="enqueue")
                break
            except Exception as exc:
                if isinstance(exc, TRANSIENT_ERRORS) or "unique" not in str(exc).lower():
                    raise
                for key in keys:
                    existing = self.storage.active_job_with_key(key)
                    if existing is not None:
                        raise DuplicateJob(key, existing) from None
                # The holder finished between our insert and the look-up: the key is free now, try again.
                if attempt == 2:
                    raise DuplicateJob(keys[0] if keys else "", None) from None
        self.storage.wake_local()

    def enqueue(
        self,
        name: str,
        args: Any = None,
        *,
        priority: int | None = None,
        retries: int | None = None,
        delay: timedelta | float | int | None = None,
        at: datetime | None = None,
        queue: str | None = None,
        unique: str | None = None,
    ) -> str:
        """Store a job; returns its id. Unknown types raise UnknownJobType, bad args TypeError (nothing
        written), an active job holding `unique` raises DuplicateJob with `.existing_id`."""
        row = self._row(
            name, args, priority=priority, retries=retries, delay=delay, at=at, queue=queue, unique=unique
        )
        self._insert([row])
        return str(row[0])

    def enqueue_many(self, subs: list[Sub]) -> list[str]:
        """Enqueue many jobs in one transaction (all or none)."""
        rows = [
            self._row(
                s.type, s.args, priority=s.priority, retries=s.retries, delay=s.delay, at=None,
                queue=s.queue, unique=s.unique,
            )
            for s in subs
        ]
        if rows:
            self._insert(rows)
        return [str(r[0]) for r in rows]

    def _sub_rows(
        self, subs: list[Sub], queue: str | None, retries: int | None, parent_id: str, fanout_id: str
    ) -> list[tuple[Any, ...]]:
        return [
            self._row(
                s.type, s.args, priority=s.priority,
                retries=s.retries if s.retries is not None else retries, delay=s.delay, at=None,
                queue=s.queue or queue, unique=s.unique, parent_id=parent_id, fanout_id=fanout_id, fanout_pos=i,
            )
            for i, s in enumerate(subs)
        ]

    # -- look up -----------------------------------------------------------------------------------------
    def _select(self, where: str, params: tuple[Any, ...] = (), tail: str = "") -> list[Job]:
        sql = self.storage.dialect.render(f"SELECT {COLS} FROM djobs_jobs {where} {tail}")
        rows = self.storage.run(lambda: self.storage.execute(sql, params).fetchall(), what="read")
        return [job_from_row(r) for r in rows]

    def get_job(self, job_id: str) -> Job | None:
        jobs = self._select("WHERE id = ?", (job_id,))
        return jobs[0] if jobs else None

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
    ) -> list[Job]:
        """Jobs newest first, filtered."""
        clauses, params = [], []
        for col, val in (("status", status), ("queue", queue), ("type", type)):
            if val is not None:
                clauses.append(f"{col} = ?")
                params.append(val.value if isinstance(val, JobStatus) else str(val))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._select(
            where, (*params, int(limit), int(offset)), "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        )

    def sub_jobs(self, job_id: str, limit: int | None = None) -> list[Job]:
        tail = "ORDER BY created_at, fanout_pos" + (f" LIMIT {int(limit)}" if limit is not None else "")
        return self._select("WHERE parent_id = ?", (job_id,), tail)

    def job_detail(self, job_id: str, events: int = 20, sub_jobs: int = 200) -> JobDetail:
        """The job, its checkpoints, its first `sub_jobs` sub-jobs and its newest `events` events (oldest
        first): what `inspect ID`, the TUI's detail screen and the web UI's job view show. JobNotFound if
        there is no such job."""
        job = self._must(job_id)
        subs = self.sub_jobs(job_id, limit=sub_jobs + 1)
        return JobDetail(
            job=job,
            checkpoints=self.checkpoints(job_id),
            sub_jobs=subs[:sub_jobs],
            events=self.job_events(job_id, newest=events),
            more_sub_jobs=max(0, self.count_sub_jobs(job_id) - sub_jobs) if len(subs) > sub_jobs else 0,
        )

    def count_sub_jobs(self, job_id: str) -> int:
        sql = self.storage.dialect.render("SELECT COUNT(*) FROM djobs_jobs WHERE parent_id = ?")
        return int(self.storage.execute(sql, (job_id,)).fetchone()[0])

    def job_events(self, job_id: str, newest: int = 20) -> list[StoredEvent]:
        """The newest `newest` stored events of one job, oldest first."""
        sql = self.storage.dialect.render(
            "SELECT id, ts, kind, job_id, queue, worker_id, data FROM djobs_events WHERE job_id = ? "
            "ORDER BY id DESC LIMIT ?"
        )
        rows = self.storage.execute(sql, (job_id, int(newest))).fetchall()
        return [_stored_event(r) for r in reversed(rows)]

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        sql = self.storage.dialect.render(
            "SELECT job_id, call_index, name, value, error, created_at, key FROM djobs_checkpoints "
            "WHERE job_id = ? ORDER BY created_at, key"
        )
        rows = self.storage.execute(sql, (job_id,)).fetchall()
        return [Checkpoint(r[0], r[1], r[2], codec.loads(r[3]), r[4], from_epoch(r[5])) for r in rows]

    def queue_stats(self) -> list[QueueStats]:
        r = self.storage.dialect.render
        ex = self.storage.execute
        counts: dict[str, dict[str, int]] = {}
        for q, status, n in ex("SELECT queue, status, COUNT(*) FROM djobs_jobs GROUP BY queue, status").fetchall():
            counts.setdefault(q, {})[status] = int(n)
        recent = dict(
            ex(
                r(
                    "SELECT queue, COUNT(*) FROM djobs_jobs WHERE status = 'completed' "
                    "AND completed_at >= {now} - 60 GROUP BY queue"
                )
            ).fetchall()
        )
        paused = {
            row[0]: row[1:]
            for row in ex("SELECT name, paused, paused_at, pause_reason FROM djobs_queues").fetchall()
        }
        out = []
        for name in sorted({*counts, *paused}):
            p = paused.get(name, (0, None, None))
            out.append(
                QueueStats(
                    name=name, paused=bool(p[0]), paused_at=from_epoch(p[1]), pause_reason=p[2],
                    counts=counts.get(name, {}), completed_last_minute=int(recent.get(name, 0)),
                )
            )
        return out

    def purge(
        self,
        statuses: tuple[str, ...] | list[str] = ("completed", "failed", "cancelled"),
        older_than: timedelta | float = timedelta(days=7),
    ) -> int:
        """Delete finished jobs (and their checkpoints and fan-out records) older than `older_than`."""
        bad = [s for s in statuses if s not in ("completed", "failed", "cancelled")]
        if bad:
            raise ValueError(f"purge only deletes finished jobs, not {', '.join(bad)}")
        if not statuses:
            return 0
        r = self.storage.dialect.render
        marks = ", ".join("?" * len(statuses))
        sel = f"SELECT id FROM djobs_jobs WHERE status IN ({marks}) AND completed_at < {{now}} - CAST(? AS DOUBLE PRECISION)"
        params = (*statuses, to_seconds(older_than))
        with self.storage.tx():
            self.storage.execute(r(f"DELETE FROM djobs_checkpoints WHERE job_id IN ({sel})"), params)
            self.storage.execute(r(f"DELETE FROM djobs_fanouts WHERE parent_id IN ({sel})"), params)
            n = self.storage.execute(r(f"DELETE FROM djobs_jobs WHERE id IN ({sel})"), params).rowcount
        return int(n)

    # -- cancel and retry --------------------------------------------------------------------------------
    def cancel_job(self, job_id: str, reason: str | None = None) -> bool:
        """Cancel a job that is not finished, and its whole subtree. A running handler is cancelled
        cooperatively wherever it runs. False if the job had already finished."""
        self._must(job_id)
        rows = self.storage.run(
            lambda: self.storage.cancel_tree(job_id, reason or "cancelled"), what="cancel"
        )
        self._persist_events(
            [("job_cancelled", jid, q, None, codec.dumps({"reason": reason})) for jid, q, _ in rows]
        )
        self._decide_fanouts({f for _, _, f in rows if f})
        return any(jid == job_id for jid, _, _ in rows)

    def _decide_fanouts(self, fanout_ids: set[str]) -> None:
        from djobs.durable import decide

        for fid in sorted(fanout_ids):
            self.storage.run(functools.partial(self.storage.evaluate_fanout, fid, decide), what="fan-out")

    def retry_job(self, job_id: str) -> bool:
        """Requeue a failed or cancelled job (attempts start again). False if it is in another state."""
        self._must(job_id)
        sql = self.storage.dialect.render(
            "UPDATE djobs_jobs SET status = 'pending', attempt = 0, run_at = {now}, completed_at = NULL, "
            "locked_by = NULL, updated_at = {now} WHERE id = ? AND status IN ('failed', 'cancelled')"
        )
        try:
            with self.storage.tx():
                n = self.storage.execute(sql, (job_id,)).rowcount
        except Exception as exc:
            if "unique" in str(exc).lower():
                job = self._must(job_id)
                raise DuplicateJob(job.unique_key or "", self.storage.active_job_with_key(job.unique_key or "")) from None
            raise
        if n:
            self._persist_events([("job_requeued", job_id, None, None, None)])
            self._notify()
        return bool(n)

    # -- pause and resume: jobs --------------------------------------------------------------------------
    def pause_job(self, job_id: str, mode: PauseMode = PauseMode.GRACEFUL, reason: str | None = None) -> bool:
        """Pending/retrying/waiting jobs become paused. A running job: graceful lets it finish (a retry it
        needs then waits paused); aggressive cancels its handler and pauses it with its attempt refunded."""
        mode = PauseMode(mode)
        job = self._must(job_id)
        r = self.storage.dialect.render
        with self.storage.tx():
            n = self.storage.execute(
                r(
                    "UPDATE djobs_jobs SET paused_from = status, status = 'paused', paused_at = {now}, "
                    "pause_reason = ?, updated_at = {now} "
                    "WHERE id = ? AND status IN ('pending', 'retrying', 'waiting')"
                ),
                (reason, job_id),
            ).rowcount
            if not n and mode == PauseMode.AGGRESSIVE:
                n = self.storage.execute(
                    r(
                        "UPDATE djobs_jobs SET status = 'paused', paused_from = 'pending', paused_at = {now}, "
                        "pause_reason = ?, attempt = attempt - 1, locked_by = NULL, updated_at = {now} "
                        "WHERE id = ? AND status = 'running'"
                    ),
                    (reason, job_id),
                ).rowcount
            elif not n:
                n = self.storage.execute(
                    r(
                        "UPDATE djobs_jobs SET pause_requested = 1, pause_reason = ?, updated_at = {now} "
                        "WHERE id = ? AND status = 'running'"
                    ),
                    (reason, job_id),
                ).rowcount
            if n:
                self._persist_event_in_tx("job_paused", job, None, {"mode": mode.value, "reason": reason})
        if n:
            if mode == PauseMode.AGGRESSIVE and job.status == JobStatus.RUNNING:
                self.storage.taken([job_id])
            self.emit(JobPaused(job_id=job_id, job=self.get_job(job_id)))
            return True
        return self.is_job_paused(job_id)

    def resume_job(self, job_id: str) -> bool:
        job = self._must(job_id)
        r = self.storage.dialect.render
        with self.storage.tx():
            n = self.storage.execute(
                r(
                    "UPDATE djobs_jobs SET status = COALESCE(paused_from, 'pending'), paused_from = NULL, "
                    "paused_at = NULL, pause_reason = NULL, pause_requested = 0, updated_at = {now} "
                    "WHERE id = ? AND status = 'paused'"
                ),
                (job_id,),
            ).rowcount
            n += self.storage.execute(
                r(
                    "UPDATE djobs_jobs SET pause_requested = 0, pause_reason = NULL, updated_at = {now} "
                    "WHERE id = ? AND status = 'running' AND pause_requested = 1"
                ),
                (job_id,),
            ).rowcount
            if n:
                self._persist_event_in_tx("job_resumed", job, None, None)
        if n:
            self._notify()
            self.emit(JobResumed(job_id=job_id, job=self.get_job(job_id)))
        return bool(n)

    def is_job_paused(self, job_id: str) -> bool:
        row = self.storage.execute(
            self.storage.dialect.render("SELECT status, pause_requested FROM djobs_jobs WHERE id = ?"), (job_id,)
        ).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return row[0] == "paused" or bool(row[1])

    def paused_jobs(self, queue: str | None = None) -> list[Job]:
        if queue is None:
            return self._select("WHERE status = 'paused'", (), "ORDER BY paused_at")
        return self._select("WHERE status = 'paused' AND queue = ?", (queue,), "ORDER BY paused_at")

    # -- pause and resume: queues ------------------------------------------------------------------------
    def pause_queue(self, name: str, reason: str | None = None) -> None:
        """Stored in the database and honoured inside every worker's claim; running jobs finish."""
        r = self.storage.dialect.render
        with self.storage.tx():
            self.storage.execute(
                r(
                    "INSERT INTO djobs_queues (name, paused, paused_at, pause_reason) VALUES (?, 1, {now}, ?) "
                    "ON CONFLICT (name) DO UPDATE SET paused = 1, paused_at = excluded.paused_at, "
                    "pause_reason = excluded.pause_reason"
                ),
                (name, reason),
            )
            self.storage.execute(self.storage.sql["insert_event"], ("queue_paused", None, name, None, codec.dumps({"reason": reason})))
        self.emit(QueuePaused(queue=name))

    def resume_queue(self, name: str) -> None:
        r = self.storage.dialect.render
        with self.storage.tx():
            self.storage.execute(
                r("UPDATE djobs_queues SET paused = 0, paused_at = NULL, pause_reason = NULL WHERE name = ?"), (name,)
            )
            self.storage.execute(self.storage.sql["insert_event"], ("queue_resumed", None, name, None, None))
        self._notify()
        self.emit(QueueResumed(queue=name))

    def is_queue_paused(self, name: str) -> bool:
        row = self.storage.execute(
            self.storage.dialect.render("SELECT paused FROM djobs_queues WHERE name = ?"), (name,)
        ).fetchone()
        return bool(row and row[0])

    def paused_queues(self) -> list[str]:
        return [r[0] for r in self.storage.execute("SELECT name FROM djobs_queues WHERE paused = 1 ORDER BY name")]

    # -- workers -----------------------------------------------------------------------------------------
    def worker(self, **options: Any) -> Worker:
        from djobs.worker import Worker

        return Worker(self, **options)

    def workers(self, include_dead: bool = False, stale_age: float = 30.0) -> list[WorkerInfo]:
        r = self.storage.dialect.render
        rows = self.storage.execute(
            r(
                "SELECT id, host, pid, queues, handlers, paused, pause_mode, pause_reason, paused_at, started_at, "
                "heartbeat_at, running, stopped_at, {now} FROM djobs_workers ORDER BY started_at"
            )
        ).fetchall()
        out = []
        for row in rows:
            alive = row[12] is None and row[10] >= row[13] - stale_age
            if not alive and not include_dead:
                continue
            out.append(
                WorkerInfo(
                    id=row[0], host=row[1], pid=row[2], queues=codec.loads(row[3]), handlers=codec.loads(row[4]),
                    paused=bool(row[5]), pause_mode=PauseMode(row[6]) if row[6] else None, pause_reason=row[7],
                    paused_at=from_epoch(row[8]), started_at=from_epoch(row[9]),
                    last_heartbeat_at=from_epoch(row[10]), running=int(row[11] or 0), alive=alive,
                )
            )
        return out

    def pause_worker(
        self, worker_id: str, mode: PauseMode = PauseMode.GRACEFUL, reason: str | None = None
    ) -> bool:
        """Pause any worker by id, from any process; it stops claiming at once (the claim checks its row)."""
        mode = PauseMode(mode)
        found, _ = self.storage.set_worker_pause(worker_id, True, mode.value, reason)
        if found:
            self._persist_events([("worker_paused", None, None, worker_id, codec.dumps({"mode": mode.value, "reason": reason}))])
            self.emit(WorkerPaused(worker_id=worker_id, mode=mode))
        return found

    def resume_worker(self, worker_id: str) -> bool:
        found, _ = self.storage.set_worker_pause(worker_id, False, None, None)
        if found:
            self._persist_events([("worker_resumed", None, None, worker_id, None)])
            self._notify()
            self.emit(WorkerResumed(worker_id=worker_id))
        return found

    # -- schedules ---------------------------------------------------------------------------------------
    def schedule(
        self,
        job: str,
        schedule: Schedule,
        args: Any = None,
        queue: str | None = None,
        priority: int = 0,
        name: str | None = None,
        retries: int | None = None,
        timezone: str | None = None,
    ) -> str:
        """Register (or update) a recurring schedule; stored in the database so any worker running the
        scheduler fires it, exactly once per fire time. A new schedule does not fire at start-up."""
        h = self.get_handler(job)
        if timezone is not None:
            schedule = schedule.with_timezone(timezone)
        args_json = h.check_args(args)
        name = name or job
        q = queue or h.options.queue
        n_retries = h.options.retries if retries is None else retries
        r = self.storage.dialect.render
        with self.storage.tx():
            now = self.storage.db_now()
            row = self.storage.execute(r("SELECT spec FROM djobs_schedules WHERE name = ?"), (name,)).fetchone()
            if row is None:
                self.storage.execute(
                    r(
                        "INSERT INTO djobs_schedules (name, job, spec, args, queue, priority, retries, paused, "
                        "next_fire, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, {now})"
                    ),
                    (name, job, schedule.spec, args_json, q, int(priority), n_retries, schedule.next_after(now)),
                )
            else:
                changed = row[0] != schedule.spec
                self.storage.execute(
                    r(
                        "UPDATE djobs_schedules SET job = ?, spec = ?, args = ?, queue = ?, priority = ?, retries = ?"
                        + (", next_fire = ?" if changed else "")
                        + " WHERE name = ?"
                    ),
                    (job, schedule.spec, args_json, q, int(priority), n_retries)
                    + ((schedule.next_after(now),) if changed else ())
                    + (name,),
                )
        return name

    def unschedule(self, name: str) -> bool:
        with self.storage.tx():
            return bool(
                self.storage.execute(self.storage.dialect.render("DELETE FROM djobs_schedules WHERE name = ?"), (name,)).rowcount
            )

    def schedules(self) -> list[ScheduleInfo]:
        rows = self.storage.execute(
            "SELECT name, job, spec, args, queue, priority, paused, last_fire, next_fire, pause_reason "
            "FROM djobs_schedules ORDER BY name"
        ).fetchall()
        out = []
        for row in rows:
            tz = row[2].split(" tz=", 1)[1] if " tz=" in row[2] else None
            out.append(
                ScheduleInfo(
                    name=row[0], job=row[1], spec=row[2], args=codec.loads(row[3]), queue=row[4], priority=row[5],
                    timezone=tz, paused=bool(row[6]), last_fire=from_epoch(row[7]),
                    next_fire=None if row[6] else from_epoch(row[8]), pause_reason=row[9],
                )
            )
        return out

    def pause_schedule(self, name: str, reason: str | None = None) -> bool:
        r = self.storage.dialect.render
        with self.storage.tx():
            n = self.storage.execute(
                r("UPDATE djobs_schedules SET paused = 1, paused_at = {now}, pause_reason = ? WHERE name = ?"),
                (reason, name),
            ).rowcount
            if n:
                self.storage.execute(self.storage.sql["insert_event"], ("schedule_paused", None, None, None, codec.dumps({"schedule": name, "reason": reason})))
        return bool(n)

    def resume_schedule(self, name: str) -> bool:
        """Resume a schedule; it fires next at its next fire time from now (paused fires are skipped)."""
        r = self.storage.dialect.render
        with self.storage.tx():
            row = self.storage.execute(r("SELECT spec FROM djobs_schedules WHERE name = ?"), (name,)).fetchone()
            if row is None:
                return False
            nxt = parse_spec(row[0]).next_after(self.storage.db_now())
            self.storage.execute(
                r("UPDATE djobs_schedules SET paused = 0, paused_at = NULL, pause_reason = NULL, next_fire = ? WHERE name = ?"),
                (nxt, name),
            )
            self.storage.execute(self.storage.sql["insert_event"], ("schedule_resumed", None, None, None, codec.dumps({"schedule": name})))
        return True

    def _scheduler_tick(self) -> int:
        """Fire every due schedule once. Each fire time is claimed (compare-and-set on next_fire) in the
        same transaction as its enqueue, so any number of schedulers fire it exactly once. After downtime
        only the most recent missed fire time runs."""
        st = self.storage
        r = st.dialect.render
        due = st.execute(
            r("SELECT name, job, spec, args, queue, priority, retries, next_fire, {now} FROM djobs_schedules "
              "WHERE paused = 0 AND next_fire <= {now}")
        ).fetchall()
        fired = 0
        for name, job, spec, args, queue, priority, retries, next_fire, now in due:
            try:
                sched = parse_spec(spec)
            except ValueError as exc:
                log.error("schedule %s: %s", name, exc)
                continue
            fire = max(float(next_fire), sched.last_at_or_before(float(now)))
            nxt = sched.next_after(float(now))
            with st.tx():
                won = st.execute(
                    r("UPDATE djobs_schedules SET last_fire = ?, next_fire = ? WHERE name = ? AND next_fire = ? AND paused = 0"),
                    (fire, nxt, name, next_fire),
                ).rowcount
                if won:
                    st.execute(
                        st.sql["insert_job"],
                        (new_id(), job, queue, args, priority, retries, fire, 0.0, None, None, None, None),
                    )
                    st.execute(
                        st.sql["insert_event"],
                        ("schedule_fired", None, queue, None, codec.dumps({"schedule": name, "fire_time": fire})),
                    )
            fired += int(bool(won))
        if fired:
            st.wake_local()
        return fired

    # -- events ------------------------------------------------------------------------------------------
    def events(self, buffer: int | None = None) -> Subscription:
        """Subscribe to this process's events (bounded; drops the oldest when full, counting drops)."""
        return self._bus.subscribe(buffer)

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()

    def emit(self, event: Event) -> None:
        self._bus.publish(event)

    def emit_custom(self, job_id: str | None, kind: str, data: Any = None, persist: bool = False) -> None:
        self._bus.publish(CustomEvent(job_id=job_id, kind=kind, data=data))
        if persist:
            self._persist_events([(f"custom:{kind}", job_id, None, None, codec.dumps(data))])

    def _persist_events(self, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.storage.run(lambda: self.storage.insert_events(rows), what="event log")

    def _persist_event_in_tx(self, kind: str, job: Job | None, worker_id: str | None, data: Any) -> None:
        self.storage.execute(
            self.storage.sql["insert_event"],
            (kind, job.id if job else None, job.queue if job else None, worker_id, codec.dumps(data) if data is not None else None),
        )

    def _set_progress(self, ctx: Context, progress: dict[str, Any]) -> None:
        text = codec.dumps(progress)
        st = self.storage
        with st.tx():
            st.execute(
                st.dialect.render(
                    "UPDATE djobs_jobs SET progress = ?, updated_at = {now} "
                    "WHERE id = ? AND locked_by = ? AND attempt = ? AND status = 'running'"
                ),
                (text, ctx.job.id, ctx.worker_id, ctx.job.attempt),
            )
            st.execute(st.sql["insert_event"], ("custom:progress", ctx.job.id, ctx.job.queue, ctx.worker_id, text))
        self._bus.publish(CustomEvent(job_id=ctx.job.id, kind="progress", data=progress))

    def latest_event_id(self) -> int:
        row = self.storage.execute("SELECT MAX(id) FROM djobs_events").fetchone()
        return int(row[0] or 0)

    def events_since(
        self,
        cursor: int = 0,
        limit: int = 100,
        job_id: str | None = None,
        queue: str | None = None,
        since: datetime | None = None,
    ) -> list[StoredEvent]:
        """Events from the database log with id > cursor, oldest first."""
        clauses, params = ["id > ?"], [int(cursor)]
        if job_id is not None:
            clauses.append("job_id = ?")
            params.append(job_id)  # type: ignore[arg-type]
        if queue is not None:
            clauses.append("queue = ?")
            params.append(queue)  # type: ignore[arg-type]
        if since is not None:
            clauses.append("ts >= ?")
            params.append(to_epoch(since))  # type: ignore[arg-type]
        sql = self.storage.dialect.render(
            f"SELECT id, ts, kind, job_id, queue, worker_id, data FROM djobs_events WHERE {' AND '.join(clauses)} "
            "ORDER BY id LIMIT ?"
        )
        rows = self.storage.execute(sql, (*params, int(limit))).fetchall()
        return [_stored_event(r) for r in rows]

    def follow_events(
        self,
        cursor: int | None = None,
        job_id: str | None = None,
        queue: str | None = None,
        stop: threading.Event | None = None,
        poll: float = 0.1,
    ) -> Iterator[StoredEvent]:
        """Yield events as they are written (by any process) until `stop` is set. cursor=None starts at
        the newest event as of this call (not of the first `next()`), so nothing written after the call
        is missed. Rows with ids committed out of order are caught by re-reading a short window."""
        window = 200  # ids allocated before a commit may appear late: re-read a window behind the cursor
        if cursor is None:
            cursor = self.latest_event_id()
        seen = {e.id for e in self.events_since(max(0, cursor - window), 10_000, job_id, queue) if e.id <= cursor}
        return self._follow(cursor, seen, window, job_id, queue, stop or threading.Event(), poll)

    def _follow(
        self,
        cursor: int,
        seen: set[int],
        window: int,
        job_id: str | None,
        queue: str | None,
        stop: threading.Event,
        poll: float,
    ) -> Iterator[StoredEvent]:
        arrived = threading.Event()
        listener = None
        if self.storage.is_pg:  # NOTIFY from the event log's trigger wakes us at once; polling stays as backstop
            from djobs.storage.listen import Listener

            listener = Listener(self.storage, "djobs_event", arrived.set)
            listener.start()
        try:
            while not stop.is_set():
                arrived.clear()
                fresh = [e for e in self.events_since(max(0, cursor - window), 1000, job_id, queue) if e.id not in seen]
                for ev in fresh:
                    seen.add(ev.id)
                    cursor = max(cursor, ev.id)
                    yield ev
                    if stop.is_set():
                        return
                if len(seen) > 4 * window:
                    seen = {i for i in seen if i > cursor - window}
                if not fresh:
                    if listener is not None:
                        arrived.wait(max(poll, 1.0))
                    else:
                        stop.wait(poll)
        finally:
            if listener is not None:
                listener.stop()

    # -- hooks ---------------------------------------------------------------------------------------------
    def on_job_start(self, fn: Callable[[Job], Any]) -> Callable[[Job], Any]:
        self._hooks["start"].append(fn)
        return fn

    def on_job_complete(self, fn: Callable[[Job, Any], Any]) -> Callable[[Job, Any], Any]:
        self._hooks["complete"].append(fn)
        return fn

    def on_job_fail(self, fn: Callable[[Job, BaseException], Any]) -> Callable[[Job, BaseException], Any]:
        self._hooks["fail"].append(fn)
        return fn

    def on_retry(self, fn: Callable[[Job, int, BaseException], Any]) -> Callable[[Job, int, BaseException], Any]:
        self._hooks["retry"].append(fn)
        return fn

    def _call_hooks(self, kind: str, *args: Any) -> None:
        for fn in self._hooks[kind]:
            try:
                fn(*args)
            except Exception:
                log.exception("djobs: %s hook %r raised; ignored", kind, fn)

    def _notify(self) -> None:
        """Wake workers: in this process at once, elsewhere through NOTIFY (PostgreSQL) or polling."""
        self.storage.wake_local()
        if self.storage.is_pg:
            try:
                self.storage.execute("SELECT pg_notify('djobs_wake', current_schema())")
            except Exception:  # a wake-up is an optimisation; polling still finds the job
                log.debug("pg_notify failed", exc_info=True)


_READS = (
    "get_job", "list_jobs", "sub_jobs", "job_detail", "count_sub_jobs", "job_events", "checkpoints", "queue_stats", "is_job_paused", "paused_jobs",
    "is_queue_paused", "paused_queues", "workers", "schedules", "latest_event_id", "events_since",
)  # fmt: skip
_WRITES = (
    "enqueue", "enqueue_many", "cancel_job", "retry_job", "pause_job", "resume_job", "pause_queue",
    "resume_queue", "pause_worker", "resume_worker", "schedule", "unschedule", "pause_schedule",
    "resume_schedule", "purge",
)  # fmt: skip


def _guard(fn: Callable[..., Any], retry: bool) -> Callable[..., Any]:
    """Public Queue calls: a lost connection is reset (so the next call reconnects) and surfaces as
    StorageUnavailable; reads are tried once more first, since a pooled connection may simply be stale."""
    from djobs.errors import StorageUnavailable
    from djobs.storage import TRANSIENT_ERRORS, one_line

    @functools.wraps(fn)
    def wrapper(self: Queue, *args: Any, **kwargs: Any) -> Any:
        tries = 2 if retry else 1
        for attempt in range(tries):
            try:
                return fn(self, *args, **kwargs)
            except TRANSIENT_ERRORS as exc:
                self.storage.reset_connection()
                if attempt + 1 >= tries:
                    raise StorageUnavailable(f"database unavailable: {one_line(exc)}") from exc
        raise AssertionError("unreachable")

    return wrapper


for _name in _READS + _WRITES:
    setattr(Queue, _name, _guard(getattr(Queue, _name), _name in _READS))

__all__ = ["Queue", "job_from_row", "JobEvent", "TERMINAL", "event_kind"]
