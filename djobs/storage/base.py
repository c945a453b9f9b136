"""The plumbing every storage operation shares: transactions, group commit, retries, wake-ups.

Dialect choices are made once in the constructor. SQLite writes from one process go through one lock, so
threads never spin in SQLite's busy handler against each other; other processes are met with the busy
timeout and, beyond it, the caller's RetryConfig.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import peewee as pw

from djobs.errors import StorageUnavailable
from djobs.retry import RetryConfig
from djobs.storage.dialect import Dialect
from djobs.storage.errors import TRANSIENT_ERRORS, one_line, operation, unavailable
from djobs.storage.schema import create_schema, make_models

if TYPE_CHECKING:
    from djobs.storage.pgpool import DjobsPooledPostgres

log = logging.getLogger("djobs.storage")

Row = tuple[Any, ...]

#: How long a group's leader waits for as many submitters as joined the previous group (see `_submit`).
GATHER_SECONDS = 0.001


class _GroupItem:
    __slots__ = ("op", "batch", "alone", "result", "error", "done")

    def __init__(
        self, op: Callable[[], Any], batch: Callable[[list[Any]], list[Any]] | None = None, alone: bool = False
    ) -> None:
        self.op = op
        self.batch = batch
        self.alone = alone
        self.result: Any = None
        self.error: BaseException | None = None
        # Held until the item is written: its submitter blocks acquiring it, the leader releases it. A bare
        # lock, not an Event: one wake-up, without a Condition's own lock and waiter list per wait.
        self.done = threading.Lock()
        self.done.acquire()


class StorageBase:
    """Connection, transactions and statement cache; the operation mixins build on these."""

    def __init__(
        self, db: pw.Database, *, conninfo: str | None = None, schema: str | None = None, busy_timeout: float = 5.0
    ) -> None:
        self.db = db
        self.busy_timeout = busy_timeout
        self.is_pg = isinstance(db, pw.PostgresqlDatabase)
        if not self.is_pg and not isinstance(db, pw.SqliteDatabase):
            raise ValueError("djobs supports SQLite and PostgreSQL databases")
        self.dialect = Dialect(self.is_pg)
        self.models = make_models(db)
        self.schema = schema
        self.conninfo = conninfo
        self._write_lock: Any = threading.RLock() if not self.is_pg else contextlib.nullcontext()
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._wakers: list[Callable[[], None]] = []
        self._taken_listeners: list[Callable[[list[str]], None]] = []
        self._control_listeners: list[Callable[[], None]] = []
        self._group_lock = threading.Lock()
        self._group_joined = threading.Condition(self._group_lock)
        self._group_pending: list[_GroupItem] = []
        self._group_leading = False
        self._group_size = 1  # how many items the last group carried
        self._statements: dict[str, str] = {}
        #: Per queue: until when its list of due keys is reused, and the list (see limits.KEYS_TTL).
        self._due_key_lists: dict[str, tuple[float, list[str | None]]] = {}
        #: PostgreSQL: queues found to have per-key limits, and when (`fused.py`).
        self._limit_kinds: dict[str, tuple[str, float]] = {}

    # -- statements ----------------------------------------------------------------------------------------
    def _q(self, sql: str) -> str:
        """The rendered text of a statement, cached by its source text (rendering is cheap, but the hot
        path should not repeat string work per call)."""
        out = self._statements.get(sql)
        if out is None:
            out = self._statements[sql] = self.dialect.render(sql)
        return out

    def _ex(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        """Execute a statement written in the shared dialect (`?`, `{now}`)."""
        return self.db.execute_sql(self._q(sql), tuple(params))

    def _many(self, sql: str, rows: list[Row]) -> None:
        """executemany, with driver errors wrapped as Peewee's (so they are mapped like any other)."""
        with pw.__exception_wrapper__:  # type: ignore[attr-defined]
            self.db.cursor().executemany(sql, rows)

    def _event(self, kind: str, job_id: str | None, queue: str | None, worker_id: str | None, data: str | None) -> None:
        """One event-log row, inside the caller's transaction."""
        self._ex(
            "INSERT INTO djobs_events (ts, kind, job_id, queue, worker_id, data) VALUES ({now}, ?, ?, ?, ?, ?)",
            (kind, job_id, queue, worker_id, data),
        )

    def _events_many(self, rows: list[Row]) -> None:
        """Event-log rows (kind, job_id, queue, worker_id, data) in one statement of constant text."""
        if rows:
            src = self.dialect.batch_source(("k", "j", "q", "w", "d"))
            self._ex(
                "INSERT INTO djobs_events (ts, kind, job_id, queue, worker_id, data) "
                f"SELECT {{now}}, v.k, v.j, v.q, v.w, v.d FROM {src}",
                self._batch_params(rows),
            )

    @staticmethod
    def _batch_params(rows: list[Row]) -> tuple[str]:
        """The parameter of a `Dialect.batch_source`: the rows as one JSON document."""
        return (json.dumps(rows, separators=(",", ":")),)

    # -- schema and connections ----------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create or migrate the schema on first use (safe when many processes start at once)."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            try:
                with self._write_lock:
                    if self.is_pg and self.schema:
                        self.db.execute_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    create_schema(self.db, self.models, self.is_pg, self.schema)
            except TRANSIENT_ERRORS as exc:
                self.reset_connection()
                raise StorageUnavailable(f"cannot reach the database: {one_line(exc)}") from exc
            except pw.DatabaseError as exc:
                self.reset_connection()
                raise unavailable(exc, "cannot use this database") from exc
            self._schema_ready = True

    @property
    def _pool(self) -> DjobsPooledPostgres | None:
        """The database as djobs' PostgreSQL pool, else None (SQLite, or a peewee database passed in)."""
        return self.db if getattr(self.db, "djobs_pool", False) else None  # type: ignore[return-value]

    def close(self) -> None:
        """Close this thread's connection (and the pool's idle ones)."""
        with contextlib.suppress(Exception):
            if (pool := self._pool) is not None:
                pool.close_all()
            else:
                self.db.close()

    def release_connection(self) -> None:
        """Hand this thread's connection back to the pool (PostgreSQL) before a long idle wait, so an idle
        worker's threads share one pooled connection instead of holding one each. SQLite keeps its file
        handle (nothing to save)."""
        if (pool := self._pool) is not None:
            with contextlib.suppress(Exception):
                if not pool.in_transaction() and not pool.is_closed():
                    pool.release_idle()

    def reset_connection(self) -> None:
        """Throw away this thread's connection after an error so the next call reconnects."""
        with contextlib.suppress(Exception):
            if (pool := self._pool) is not None:
                pool.manual_close()
            else:
                self.db.close()
        with contextlib.suppress(Exception):
            if not self.db.is_closed():
                self.db._state.reset()  # type: ignore[attr-defined]

    def _indexed(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        """The rows of a read the partial indexes serve (counts by queue and status). PostgreSQL's costs favour
        reading the whole jobs table over an index-only scan of the claim's index once a tenth of the jobs or
        so are claimable (18,000 pending of 200,000 jobs: the table read took 24 ms, the index 2 ms), so it is
        told not to, for this statement only (SET LOCAL ends with its transaction)."""
        if not self.is_pg:
            return self._ex(sql, params).fetchall()
        with self.db.atomic():
            self._ex("SET LOCAL enable_seqscan = off")
            return self._ex(sql, params).fetchall()

    @contextlib.contextmanager
    def tx(self) -> Iterator[None]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), serialised within the process on SQLite."""
        with self._write_lock, self.db.atomic():
            yield

    def group(self, op: Callable[[], Any]) -> Any:
        """Run `op` inside a write transaction shared with whatever other threads submit meanwhile (group
        commit): the first thread in leads and commits everyone's pending ops at once, the others wait for
        that commit. Durable-step checkpoints go through here, so ten handler threads checkpointing at once
        cost one commit, not ten. `op` must not leave partial writes behind when it raises."""
        return self._submit(_GroupItem(op))

    def group_batch(self, flush: Callable[[list[Any]], list[Any]], payload: Any, *, alone: bool = False) -> Any:
        """Like `group`, but items submitted with the same `flush` function are written together by one call
        `flush(payloads)` inside the shared transaction, so a group of ten checkpoints costs one statement,
        not ten. `flush` returns one result per payload, an exception instance for a payload that failed;
        it must not leave partial writes behind when it raises. `alone`: the flush is one statement, so a
        group made of nothing else needs no BEGIN/COMMIT of its own (the statement commits itself)."""
        return self._submit(_GroupItem(lambda: payload, flush, alone))

    def _run_batch(self, batch: list[_GroupItem]) -> None:
        """The leader's share of group commit: plain ops one by one, batched ones by their flush function."""
        flushes: dict[Callable[[list[Any]], list[Any]], list[_GroupItem]] = {}
        for it in batch:
            if it.batch is not None:
                flushes.setdefault(it.batch, []).append(it)
                continue
            try:
                it.result = it.op()
            except BaseException as exc:  # handed to the thread that submitted it
                it.error = exc
        for flush, items in flushes.items():
            try:
                results = flush([it.op() for it in items])
            except BaseException as exc:
                for it in items:
                    it.error = exc
                continue
            for it, res in zip(items, results, strict=True):
                if isinstance(res, BaseException):
                    it.error = res
                else:
                    it.result = res

    def _submit(self, item: _GroupItem) -> Any:
        """Group commit. Threads checkpointing in step come back together after each commit, but the first
        one back would lead a group of one while the others queue behind it (groups of 1, 9, 1, 9, …): so a
        new leader first waits, at most GATHER_SECONDS, until as many items are pending as the last group
        carried. A lone submitter (last group of one) never waits."""
        with self._group_lock:
            self._group_pending.append(item)
            lead = not self._group_leading
            self._group_leading = True
            if not lead and len(self._group_pending) >= self._group_size:
                self._group_joined.notify()
        if not lead:
            item.done.acquire()
        else:
            gather = True
            while True:
                with self._group_lock:
                    if gather and len(self._group_pending) < self._group_size:
                        self._group_joined.wait_for(lambda: len(self._group_pending) >= self._group_size, GATHER_SECONDS)
                    gather = False  # later groups took their time already: items that came while we wrote
                    batch, self._group_pending = self._group_pending, []
                    if not batch:
                        self._group_leading = False
                        break
                    self._group_size = len(batch)
                try:
                    if batch[0].alone and all(it.batch == batch[0].batch for it in batch):
                        self._run_batch(batch)
                    else:
                        with self.tx():
                            self._run_batch(batch)
                except BaseException as exc:
                    self.reset_connection()
                    err = unavailable(exc) if isinstance(exc, pw.DatabaseError) else exc
                    for it in batch:
                        if it.error is None:
                            it.error = err
                for it in batch:
                    if it is not item:
                        it.done.release()
        if item.error is not None:
            raise item.error
        return item.result

    def run(self, fn: Callable[[], Any], retry: RetryConfig | None = None, what: str = "storage") -> Any:
        """Call a storage operation with the retry policy: StorageUnavailable is tried again with backoff
        (the operation has already reset its connection); the last one propagates."""
        cfg = retry or RetryConfig(max_attempts=1)

        def on_error(exc: BaseException, attempt: int) -> None:
            text = str(exc)
            if "locked" in text or "busy" in text:
                log.warning(
                    "%s: the database is locked by another process (waited the %.0f s busy timeout); "
                    "backing off (try %d of %d)", what, self.busy_timeout, attempt, cfg.max_attempts,
                )
                return
            level = logging.WARNING if attempt >= 2 or cfg.max_attempts == 1 else logging.INFO
            log.log(level, "%s: database error (try %d of %d): %s", what, attempt, cfg.max_attempts, text)

        return cfg.run(fn, (StorageUnavailable,), on_error)

    @operation(read=True)
    def db_now(self) -> float:
        return float(self._ex("SELECT {now}").fetchone()[0])

    @operation(read=True)
    def ping(self) -> None:
        """Raise StorageUnavailable unless the database answers."""
        self._ex("SELECT 1").fetchone()

    # -- wake-ups within the process -----------------------------------------------------------------------
    def add_waker(self, fn: Callable[[], None]) -> None:
        self._wakers.append(fn)

    def remove_waker(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._wakers.remove(fn)

    def on_taken(self, fn: Callable[[list[str]], None]) -> Callable[[], None]:
        """Call fn(job_ids) whenever this process takes running jobs from their workers (cancel, aggressive
        pause, release); returns the unsubscribe function. Workers in this process react at once; workers
        elsewhere hear it through NOTIFY (PostgreSQL) or their ownership check."""
        self._taken_listeners.append(fn)
        return lambda: self._taken_listeners.remove(fn) if fn in self._taken_listeners else None

    def taken(self, job_ids: list[str]) -> None:
        if job_ids:
            for fn in list(self._taken_listeners):
                fn(job_ids)

    def on_control(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Call fn() after this process changes something workers plan around (a fan-out deadline, a
        schedule, a limit): workers in this process re-read at once, others hear NOTIFY (PostgreSQL) or poll.
        Returns the unsubscribe function."""
        self._control_listeners.append(fn)
        return lambda: self._control_listeners.remove(fn) if fn in self._control_listeners else None

    def control_local(self) -> None:
        for fn in list(self._control_listeners):
            fn()

    def wake_local(self) -> None:
        """Same-process enqueue wakes this process's workers at once."""
        for fn in list(self._wakers):
            fn()

    def _notify(self, channel: str = "djobs_wake") -> None:
        """Inside a write: wake workers of other processes at commit (PostgreSQL NOTIFY is transactional).
        SQLite workers notice any commit through `data_version`."""
        if self.is_pg:
            self.db.execute_sql(f"SELECT pg_notify('{channel}', current_schema())")

    @operation(read=True)
    def data_version(self) -> int:
        """SQLite: changes whenever another connection commits; a near-free wake-up probe."""
        return int(self.db.execute_sql("PRAGMA data_version").fetchone()[0])
