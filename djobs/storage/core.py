"""`PeeweeStorage`: every read and write djobs makes, on SQLite or PostgreSQL.

    store = djobs.connect("sqlite:///djobs.db")          # or "postgresql://user@host/db?schema=jobs"
    store = djobs.PeeweeStorage(my_peewee_db)            # wrap a database you already have

Dialect choices are made once in the constructor. SQLite writes from one process go through one lock, so
threads never spin in SQLite's busy handler against each other; other processes are met with the busy
timeout and, beyond it, the caller's RetryConfig.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import peewee as pw

from djobs.errors import StorageUnavailable
from djobs.retry import RetryConfig
from djobs.storage.models import create_schema, make_models
from djobs.storage.pool import DjobsPooledPostgres, PoolConfig
from djobs.storage.sql import TERMINAL, Dialect

log = logging.getLogger("djobs.storage")

#: Errors that mean "the database is busy or away; try again", never "your query is wrong".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (pw.OperationalError, pw.InterfaceError)

Row = tuple[Any, ...]


def new_id() -> str:
    """A time-ordered UUID (v7 layout), so id order is creation order when priorities and times tie."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | (0x7 << 76) | ((rand >> 64) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _GroupItem:
    __slots__ = ("op", "result", "error", "done")

    def __init__(self, op: Callable[[], Any]) -> None:
        self.op = op
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class PeeweeStorage:
    """djobs state in one Peewee database (SQLite or PostgreSQL)."""

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
        self._group_lock = threading.Lock()
        self._group_pending: list[_GroupItem] = []
        self._group_leading = False
        d = self.dialect
        self.sql = {
            "insert_job": d.insert_job(),
            "complete": d.complete(),
            "fail": d.fail(),
            "retry": d.retry(),
            "release": d.release(),
            "release_all": d.release_all(),
            "suspend": d.suspend(),
            "insert_event": d.insert_event(),
            "call_ckpt": d.insert_call_checkpoint(),
            "named_ckpt": d.upsert_named_checkpoint(),
            "hb_worker": d.heartbeat_worker(),
            "hb_jobs": d.heartbeat_jobs(),
            "reap": d.reap(),
            "cancel_tree": d.cancel_tree(),
            "now": d.render("SELECT {now}"),
        }
        self._claim_sql: dict[int, str] = {}

    # -- plumbing ----------------------------------------------------------------------------------------
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
            self._schema_ready = True

    def close(self) -> None:
        """Close this thread's connection (and the pool's idle ones)."""
        with contextlib.suppress(Exception):
            if isinstance(self.db, DjobsPooledPostgres):
                self.db.close_all()
            else:
                self.db.close()

    def reset_connection(self) -> None:
        """Throw away this thread's connection after an error so the next call reconnects."""
        with contextlib.suppress(Exception):
            if isinstance(self.db, DjobsPooledPostgres):
                self.db.manual_close()
            else:
                self.db.close()
        with contextlib.suppress(Exception):
            if not self.db.is_closed():
                self.db._state.reset()  # type: ignore[attr-defined]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute_sql(sql, tuple(params))

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
        item = _GroupItem(op)
        with self._group_lock:
            self._group_pending.append(item)
            lead = not self._group_leading
            self._group_leading = True
        if not lead:
            item.done.wait()
        else:
            while True:
                with self._group_lock:
                    batch, self._group_pending = self._group_pending, []
                    if not batch:
                        self._group_leading = False
                        break
                try:
                    with self.tx():
                        for it in batch:
                            try:
                                it.result = it.op()
                            except BaseException as exc:  # handed to the thread that submitted it
                                it.error = exc
                except BaseException as exc:
                    self.reset_connection()
                    for it in batch:
                        if it.error is None:
                            it.error = exc
                for it in batch:
                    it.done.set()
        if item.error is not None:
            raise item.error
        return item.result

    def run(self, fn: Callable[[], Any], retry: RetryConfig | None = None, what: str = "storage") -> Any:
        """Call fn with the retry policy, resetting the connection after each transient error."""
        cfg = retry or RetryConfig(max_attempts=1)

        def on_error(exc: BaseException, attempt: int) -> None:
            self.reset_connection()
            text = one_line(exc)
            if "locked" in text or "busy" in text:
                log.warning(
                    "%s: the database is locked by another process (waited the %.0f s busy timeout); "
                    "backing off (try %d of %d)", what, self.busy_timeout, attempt, cfg.max_attempts,
                )
                return
            level = logging.WARNING if attempt >= 2 or cfg.max_attempts == 1 else logging.INFO
            log.log(level, "%s: database error (try %d of %d): %s", what, attempt, cfg.max_attempts, text)

        try:
            return cfg.run(fn, TRANSIENT_ERRORS, on_error)
        except TRANSIENT_ERRORS as exc:
            raise StorageUnavailable(f"{what}: database unavailable: {one_line(exc)}") from exc

    def db_now(self) -> float:
        return float(self.execute(self.sql["now"]).fetchone()[0])

    def add_waker(self, fn: Callable[[], None]) -> None:
        self._wakers.append(fn)

    def remove_waker(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._wakers.remove(fn)

    def on_taken(self, fn: Callable[[list[str]], None]) -> Callable[[], None]:
        """Call fn(job_ids) whenever this process takes running jobs from their workers (cancel, aggressive
        pause, release); returns the unsubscribe function. Workers in this process react at once; workers
        elsewhere notice within their ownership check (a fraction of a second)."""
        self._taken_listeners.append(fn)
        return lambda: self._taken_listeners.remove(fn) if fn in self._taken_listeners else None

    def taken(self, job_ids: list[str]) -> None:
        if job_ids:
            for fn in list(self._taken_listeners):
                fn(job_ids)

    def wake_local(self) -> None:
        """Same-process enqueue wakes this process's workers at once."""
        for fn in list(self._wakers):
            fn()

    def data_version(self) -> int:
        """SQLite: changes whenever another connection commits; a near-free wake-up probe."""
        return int(self.execute("PRAGMA data_version").fetchone()[0])

    # -- jobs: writes --------------------------------------------------------------------------------------
    def insert_jobs(self, rows: list[Row]) -> None:
        """Insert job rows (see Dialect.insert_job) in one transaction. Unique conflicts raise IntegrityError."""
        sql = self.sql["insert_job"]
        if len(rows) == 1:
            # One statement is atomic on its own: no BEGIN/COMMIT round trips for the common single enqueue.
            with self._write_lock:
                self.execute(sql, rows[0])
            return
        with self.tx():
            self.db.cursor().executemany(sql, rows)

    def active_job_with_key(self, key: str) -> str | None:
        cur = self.execute(
            self.dialect.render(f"SELECT id FROM djobs_jobs WHERE unique_key = ? AND status NOT IN {TERMINAL}"),
            (key,),
        )
        row = cur.fetchone()
        return row[0] if row else None

    def _claim_in_tx(
        self, worker_id: str, queue: str, types: list[str], limit: int, held: bool = False
    ) -> list[Row]:
        sql = self._claim_sql.get(len(types))
        if sql is None:
            sql = self._claim_sql[len(types)] = self.dialect.claim(len(types))
        params = self.dialect.claim_params(worker_id, queue, types, limit, held)
        return list(self.execute(sql, params).fetchall())

    def _mark_started(self, claims: list[Row], worker_id: str) -> list[Row]:
        """Prefetched claims that have now started: no longer held. Returns (id, queue, attempt)."""
        sql = self._batch_update(
            "mark_started",
            ("id", "a"),
            "held = 0, started_at = {{now}}",
            "djobs_jobs.id, djobs_jobs.queue, djobs_jobs.attempt",
        )
        return list(self.execute(sql, (*self._batch_params(claims, 2), worker_id)).fetchall())

    # Batched statements keep one constant text (so psycopg prepares them once): the rows travel as
    # arrays on PostgreSQL (unnest) and as one JSON document on SQLite (json_each).
    def _batch_source(self, cols: tuple[str, ...]) -> str:
        if self.is_pg:
            arrays = ", ".join(["%s::text[]"] * len(cols))
            return f"unnest({arrays}) AS v({', '.join(cols)})"
        picks = ", ".join(f"value ->> {i} AS {c}" for i, c in enumerate(cols))
        return f"(SELECT {picks} FROM json_each(?)) AS v"

    def _batch_params(self, rows: list[Row], width: int) -> tuple[Any, ...]:
        if self.is_pg:
            return tuple([row[i] for row in rows] for i in range(width))
        return (json.dumps(rows, separators=(",", ":")),)

    def _insert_event_rows(self, rows: list[Row]) -> None:
        sql = self.sql.get("events_many")
        if sql is None:
            src = self._batch_source(("k", "j", "q", "w", "d"))
            sql = self.sql["events_many"] = self.dialect.render(
                "INSERT INTO djobs_events (ts, kind, job_id, queue, worker_id, data) "
                f"SELECT {{now}}, v.k, v.j, v.q, v.w, v.d FROM {src}"
            )
        self.execute(sql, self._batch_params(rows, 5))

    def _batch_update(self, name: str, cols: tuple[str, ...], assignments: str, returning: str) -> str:
        """UPDATE djobs_jobs from a batch of (id, attempt, …) rows, guarded by ownership. PostgreSQL joins
        the unnested arrays; SQLite reaches each row through the primary key from a materialised list
        (a join there would scan the JSON once per candidate row)."""
        sql = self.sql.get(name)
        if sql is not None:
            return sql
        guard = "AND djobs_jobs.locked_by = ? AND djobs_jobs.status = 'running'"
        if self.is_pg:
            src = self._batch_source(cols)
            sets = assignments.format(v="v")
            sql = (
                f"UPDATE djobs_jobs SET {sets} FROM {src} WHERE djobs_jobs.id = v.id "
                f"AND djobs_jobs.attempt = CAST(v.a AS INTEGER) {guard} RETURNING {returning}"
            )
        else:
            picks = ", ".join(f"value ->> {i}" for i in range(len(cols)))
            one = "(SELECT v.{c} FROM v WHERE v.id = djobs_jobs.id)"
            sets = assignments.format(v="v").replace("v.r", one.format(c="r"))
            sql = (
                f"WITH v({', '.join(cols)}) AS MATERIALIZED (SELECT {picks} FROM json_each(?)) "
                f"UPDATE djobs_jobs SET {sets} WHERE djobs_jobs.id IN (SELECT id FROM v) "
                f"AND djobs_jobs.attempt = CAST({one.format(c='a')} AS INTEGER) {guard} RETURNING {returning}"
            )
        sql = self.sql[name] = self.dialect.render(sql)
        return sql

    def _complete_many(self, pairs: list[Row], worker_id: str) -> set[str]:
        sql = self._batch_update(
            "complete_many",
            ("id", "r", "a"),
            "status = 'completed', result = {v}.r, completed_at = {{now}}, updated_at = {{now}}, "
            "locked_by = NULL, pause_requested = 0",
            "djobs_jobs.id",
        )
        return {r[0] for r in self.execute(sql, (*self._batch_params(pairs, 3), worker_id)).fetchall()}

    def cycle(
        self,
        worker_id: str,
        outcomes: list[tuple[str, str, int, tuple[Any, ...]]],
        events: list[Row],
        outcome_events: list[Row | None],
        claims: list[tuple[str, list[str], int, bool]],
        started_events: bool = True,
        started: list[Row] | None = None,
    ) -> tuple[list[bool], list[tuple[Row, int]]]:
        """One transaction per dispatcher round: write outcomes (each guarded by ownership; completions in
        one statement), the event rows of those that matched, then claim into the freed slots.

        Returns, per outcome, whether this worker still owned the job (a write that matched nothing is
        dropped by the caller), and the claimed rows."""
        matched: list[bool] = [False] * len(outcomes)
        rows = list(events)
        claimed: list[tuple[Row, int]] = []  # (row, index of the claim that took it)
        with self.tx():
            if started:
                self._mark_started([(i, str(a)) for i, a in started], worker_id)
            done = [i for i, o in enumerate(outcomes) if o[0] == "complete"]
            if done:
                won = self._complete_many(
                    [(outcomes[i][1], outcomes[i][3][0], str(outcomes[i][2])) for i in done], worker_id
                )
                for i in done:
                    matched[i] = outcomes[i][1] in won
            for i, (kind, job_id, attempt, params) in enumerate(outcomes):
                if kind != "complete":
                    matched[i] = self.execute(self.sql[kind], (*params, job_id, worker_id, attempt)).rowcount > 0
            for i, ok in enumerate(matched):
                ev = outcome_events[i] if ok else None
                if ev is not None:
                    rows.append(ev)
            for k, (queue, types, limit, held) in enumerate(claims):
                claimed.extend((r, k) for r in self._claim_in_tx(worker_id, queue, types, limit, held))
            if started_events:
                # Written with the claim, prefetched or not, so it precedes anything the handler logs.
                rows.extend(("job_started", r[0], r[2], worker_id, f'{{"attempt":{int(r[6])}}}') for r, _ in claimed)
            if rows:
                self._insert_event_rows(rows)
        return matched, claimed

    def insert_events(self, events: list[Row]) -> None:
        if not events:
            return
        with self.tx():
            self._insert_event_rows(events)

    def release_all(self, worker_id: str) -> list[str]:
        with self.tx():
            ids = [r[0] for r in self.execute(self.sql["release_all"], (worker_id,)).fetchall()]
        self.taken(ids)
        return ids

    def release_claims(self, worker_id: str, claims: list[tuple[str, int]]) -> int:
        """Give claims (job id, attempt) back to pending, attempt refunded, if this worker still holds them."""
        n = 0
        with self.tx():
            for job_id, attempt in claims:
                n += self.execute(self.sql["release"], (job_id, worker_id, attempt)).rowcount
        self.wake_local()
        return n

    def owned_running(self, worker_id: str) -> set[tuple[str, int]]:
        """(job id, attempt) of every claim this worker still holds."""
        cur = self.execute(
            self.dialect.render("SELECT id, attempt FROM djobs_jobs WHERE locked_by = ? AND status = 'running'"),
            (worker_id,),
        )
        return {(r[0], int(r[1])) for r in cur.fetchall()}

    # -- workers -----------------------------------------------------------------------------------------
    def register_worker(self, worker_id: str, host: str, pid: int, queues_json: str, handlers_json: str) -> None:
        sql = self.dialect.render(
            "INSERT INTO djobs_workers (id, host, pid, queues, handlers, started_at, heartbeat_at, running, "
            "paused) VALUES (?, ?, ?, ?, ?, {now}, {now}, 0, 0) ON CONFLICT (id) DO UPDATE SET "
            "heartbeat_at = excluded.heartbeat_at, stopped_at = NULL"
        )
        with self.tx():
            self.execute(sql, (worker_id, host, pid, queues_json, handlers_json))

    def heartbeat(self, worker_id: str, running: int) -> bool:
        """Refresh the worker's heartbeat (what the reaper reads), then, separately and skipping rows the
        dispatcher holds, its jobs' `last_heartbeat_at` (informational). Two short transactions: the
        worker's own liveness must never wait on, or deadlock with, its job rows. False if the row is gone."""
        with self.tx():
            found = self.execute(self.sql["hb_worker"], (running, worker_id)).rowcount > 0
        with self.tx():
            self.execute(self.sql["hb_jobs"], (worker_id,))
        return found

    def worker_control(self, worker_id: str) -> tuple[bool, str | None] | None:
        row = self.execute(
            self.dialect.render("SELECT paused, pause_mode FROM djobs_workers WHERE id = ?"), (worker_id,)
        ).fetchone()
        return (bool(row[0]), row[1]) if row else None

    def set_worker_pause(
        self, worker_id: str, paused: bool, mode: str | None, reason: str | None
    ) -> tuple[bool, list[str]]:
        """Pause or resume a worker row. Aggressive pause releases its running jobs (attempt refunded) in
        the same transaction, so the jobs are free at once whatever the worker is doing."""
        released: list[str] = []
        with self.tx():
            if paused:
                n = self.execute(
                    self.dialect.render(
                        "UPDATE djobs_workers SET paused = 1, pause_mode = ?, pause_reason = ?, "
                        "paused_at = {now} WHERE id = ?"
                    ),
                    (mode, reason, worker_id),
                ).rowcount
                if n and mode == "aggressive":
                    released = [r[0] for r in self.execute(self.sql["release_all"], (worker_id,)).fetchall()]
            else:
                n = self.execute(
                    self.dialect.render(
                        "UPDATE djobs_workers SET paused = 0, pause_mode = NULL, pause_reason = NULL, "
                        "paused_at = NULL WHERE id = ?"
                    ),
                    (worker_id,),
                ).rowcount
        self.taken(released)
        return n > 0, released

    def stop_worker(self, worker_id: str) -> None:
        with self.tx():
            self.execute(
                self.dialect.render("UPDATE djobs_workers SET stopped_at = {now}, running = 0 WHERE id = ?"),
                (worker_id,),
            )

    def reap(self, stale_age: float, error: str) -> list[Row]:
        with self.tx():
            rows = self.execute(self.sql["reap"], (error, stale_age)).fetchall()
            # Forget workers silent for a long time (they stay listed as dead for an hour).
            self.execute(
                self.dialect.render("DELETE FROM djobs_workers WHERE heartbeat_at < {now} - 3600"),
            )
        return rows

    # -- fan-out -----------------------------------------------------------------------------------------
    def evaluate_fanout(self, fanout_id: str, decide: Callable[[str, int, dict[str, int]], str | None]) -> str | None:
        """Decide a fan-out if its sub-jobs allow it and wake its parent. Runs in its own transaction with
        the fan-out row locked, so the last sub-job to finish always sees every other one finished."""
        r = self.dialect.render
        with self.tx():
            lock = " FOR UPDATE" if self.is_pg else ""
            row = self.execute(
                r(f"SELECT strategy, total, decided, parent_id FROM djobs_fanouts WHERE id = ?{lock}"), (fanout_id,)
            ).fetchone()
            if row is None or row[2] is not None:
                return None
            strategy, total, _, parent_id = row
            counts = dict(
                self.execute(
                    r("SELECT status, COUNT(*) FROM djobs_jobs WHERE fanout_id = ? GROUP BY status"), (fanout_id,)
                ).fetchall()
            )
            outcome = decide(strategy, total, counts)
            if outcome is None:
                return None
            self.execute(r("UPDATE djobs_fanouts SET decided = ? WHERE id = ?"), (outcome, fanout_id))
            self._wake_parent(parent_id)
        self.wake_local()
        return outcome

    def _wake_parent(self, parent_id: str) -> None:
        self.execute(
            self.dialect.render(
                "UPDATE djobs_jobs SET "
                "status = CASE WHEN status = 'waiting' THEN 'pending' ELSE status END, "
                "paused_from = CASE WHEN status = 'paused' AND paused_from = 'waiting' THEN 'pending' "
                "ELSE paused_from END, run_at = {now}, updated_at = {now} "
                "WHERE id = ? AND status IN ('waiting', 'paused')"
            ),
            (parent_id,),
        )
        if self.is_pg:
            self.execute("SELECT pg_notify('djobs_wake', current_schema())")

    def cancel_tree(self, job_id: str, reason: str | None) -> list[Row]:
        """Cancel a job and its whole subtree; returns (id, queue, fanout_id) of each row cancelled."""
        with self.tx():
            rows = list(self.execute(self.sql["cancel_tree"], (job_id, reason)).fetchall())
        self.taken([r[0] for r in rows])
        return rows

    def fanouts_due(self) -> tuple[list[str], list[str]]:
        """(undecided fan-outs past their timeout, undecided fan-outs whose sub-jobs are all finished)."""
        r = self.dialect.render
        timed_out = [
            row[0]
            for row in self.execute(
                r("SELECT id FROM djobs_fanouts WHERE decided IS NULL AND timeout_at IS NOT NULL AND timeout_at <= {now}")
            ).fetchall()
        ]
        finished = [
            row[0]
            for row in self.execute(
                r(
                    "SELECT f.id FROM djobs_fanouts f WHERE f.decided IS NULL AND NOT EXISTS "
                    f"(SELECT 1 FROM djobs_jobs s WHERE s.fanout_id = f.id AND s.status NOT IN {TERMINAL})"
                )
            ).fetchall()
        ]
        return timed_out, finished

    def resume_orphaned_waiters(self) -> int:
        """A parent left `waiting` with no undecided fan-out (its decider died between writes) resumes."""
        with self.tx():
            return int(
                self.execute(
                    self.dialect.render(
                        "UPDATE djobs_jobs SET status = 'pending', run_at = {now}, updated_at = {now} "
                        "WHERE status = 'waiting' AND NOT EXISTS (SELECT 1 FROM djobs_fanouts f "
                        "WHERE f.parent_id = djobs_jobs.id AND f.decided IS NULL)"
                    )
                ).rowcount
            )

    # -- events ------------------------------------------------------------------------------------------
    def trim_events(self, max_age: float, max_rows: int) -> None:
        r = self.dialect.render
        with self.tx():
            self.execute(r("DELETE FROM djobs_events WHERE ts < {now} - CAST(? AS DOUBLE PRECISION)"), (max_age,))
            top = self.execute("SELECT MAX(id) FROM djobs_events").fetchone()[0]
            if top is not None and max_rows > 0:
                self.execute(r("DELETE FROM djobs_events WHERE id <= ?"), (int(top) - max_rows,))


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _split_url(url: str) -> tuple[str, str, dict[str, str]]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return parts.scheme.lower(), urlunsplit(parts._replace(query="")), query


def connect(
    url: str = "sqlite:///djobs.db",
    *,
    pool: PoolConfig | None = None,
    busy_timeout: float = 5.0,
    synchronous: str = "NORMAL",
    connect_timeout: float = 5.0,
) -> PeeweeStorage:
    """Open (and on first use create) a djobs store.

    `sqlite:///relative.db`, `sqlite:////absolute/path.db`, `postgresql://user@host:port/db`. A PostgreSQL
    URL may carry `?schema=NAME` to keep djobs's tables in their own schema (created if missing).
    SQLite runs in WAL mode with `synchronous=NORMAL` (survives process crashes; pass "FULL" to survive
    power loss too). Raises ValueError for a bad URL and StorageUnavailable when the server cannot be
    reached.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"bad database URL {url!r} (expected sqlite:///path.db or postgresql://user@host/db)")
    scheme, base, query = _split_url(url)
    if scheme in ("sqlite", "sqlite3"):
        path = unquote(url.split("://", 1)[1])
        path = path.split("?", 1)[0]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        if not path:
            raise ValueError(f"bad SQLite URL {url!r}: no file path")
        if path != ":memory:":
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise StorageUnavailable(f"cannot open SQLite database {path!r}: directory {parent!r} does not exist")
        db = pw.SqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "synchronous": synchronous,
                "busy_timeout": int(busy_timeout * 1000),
                "foreign_keys": 0,
            },
            lock_type="IMMEDIATE",
            timeout=busy_timeout,
            check_same_thread=False,
        )
        store = PeeweeStorage(db, busy_timeout=busy_timeout)
    elif scheme in ("postgresql", "postgres", "psycopg", "psycopg3", "postgresql+psycopg"):
        schema = query.pop("schema", None)
        if schema is not None and not schema.replace("_", "").isalnum():
            raise ValueError(f"bad schema name {schema!r} in database URL")
        if "connect_timeout" not in query:
            query["connect_timeout"] = str(max(1, int(connect_timeout)))
        if schema:
            query["options"] = (query.get("options", "") + f" -c search_path={schema}").strip()
        conninfo = urlunsplit(urlsplit(base)._replace(scheme="postgresql", query=urlencode(query, quote_via=quote)))
        db = DjobsPooledPostgres(conninfo, pool or PoolConfig.default(), prefer_psycopg3=True)
        store = PeeweeStorage(db, conninfo=conninfo, schema=schema)
    else:
        raise ValueError(f"unsupported database URL scheme {scheme!r} (use sqlite:// or postgresql://)")
    store.ensure_schema()
    return store
