"""Operations on job rows outside the claim: insert, look up, list, retry, delete, purge, progress."""

from __future__ import annotations

import functools
import re
import sqlite3
from typing import TYPE_CHECKING, Any

from djobs import codec, validate
from djobs.errors import DuplicateJob
from djobs.jobs import STATUS_VALUES, TERMINAL_VALUES, Job, NewJob
from djobs.storage import records
from djobs.storage.base import StorageBase
from djobs.storage.dialect import FINISHED, IS_CLAIMABLE, NOT_HOT, TERMINAL, Dialect
from djobs.storage.errors import is_unique_violation, operation

if TYPE_CHECKING:
    from djobs.info import JobSummary

_INSERT = (
    "INSERT INTO djobs_jobs (id, type, queue, args, priority, status, attempt, max_retries, run_at, created_at, "
    "updated_at, unique_key, parent_id, fanout_id, fanout_pos, pause_requested, timeout, job_key, meta, "
    "unique_until, backoff, trace) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, "
    "COALESCE(CAST(? AS DOUBLE PRECISION), {now} + CAST(? AS DOUBLE PRECISION)), {now}, {now}, ?, ?, ?, ?, 0, "
    "?, ?, ?, {now} + CAST(? AS DOUBLE PRECISION), ?, ?)"
)
_SELECT = "SELECT {cols} FROM djobs_jobs "
# The args and error previews are cut in SQL, so a listing never moves megabytes of args.
_SUMMARY = (
    f"SELECT {records.SUMMARY_COLS}, SUBSTR(args, 1, ?), SUBSTR(last_error, 1, ?) FROM djobs_jobs "
)


# Many jobs in one statement. A batch's rows mostly repeat each other (one type, queue, priority, …): only the
# columns that differ travel per row (a multi-row VALUES on SQLite, typed arrays on PostgreSQL); the others are
# bound once. On SQLite this costs a third of handing the rows over as one JSON document (whose `->>` picks
# re-parse every row once per column) and of binding every column of every row.
_MANY_COLS = (
    ("id", "text"), ("type", "text"), ("queue", "text"), ("args", "text"), ("priority", "int"), ("retries", "int"),
    ("at", "float8"), ("delay", "float8"), ("ukey", "text"), ("parent", "text"), ("fanout", "text"), ("pos", "int"),
    ("timeout", "float8"), ("jkey", "text"), ("meta", "text"), ("ufor", "float8"), ("backoff", "text"),
    ("trace", "text"),
)  # fmt: skip
_MANY = (
    "INSERT INTO djobs_jobs (id, type, queue, args, priority, status, attempt, max_retries, run_at, created_at, "
    "updated_at, unique_key, parent_id, fanout_id, fanout_pos, pause_requested, timeout, job_key, meta, "
    "unique_until, backoff, trace) SELECT w.id, w.type, w.queue, w.args, w.priority, 'pending', 0, w.retries, "
    "COALESCE(w.at, n.now + w.delay), n.now, n.now, w.ukey, w.parent, w.fanout, w.pos, 0, w.timeout, w.jkey, "
    "w.meta, n.now + w.ufor, w.backoff, w.trace FROM w, n"
)
_SQL_TYPE = {"text": "TEXT", "int": "INTEGER", "float8": "DOUBLE PRECISION"}
#: Rows per statement on SQLite: bounds a statement's text and the variables it binds, within SQLite's limit
#: on variables (999 before 3.32).
_MANY_CHUNK = min(500, (32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999) // (len(_MANY_COLS) + 1))


@functools.lru_cache(maxsize=64)
def _many_sql(is_pg: bool, varying: tuple[int, ...], n_rows: int) -> str:
    """The batch insert for rows whose columns `varying` differ (PostgreSQL: any number of rows)."""
    names = [c for c, _ in _MANY_COLS]
    if is_pg:
        typed = [f"CAST(? AS {_SQL_TYPE[t]})" for _, t in _MANY_COLS]
        arrays = ", ".join(f"?::{_MANY_COLS[i][1]}[]" for i in varying)
        src = f"unnest({arrays}) AS v({', '.join(names[i] for i in varying)})"
        picks = ", ".join(f"v.{c}" if i in varying else f"{typed[i]} AS {c}" for i, c in enumerate(names))
        return Dialect(True).render(f"WITH n(now) AS (SELECT {{now}}), w AS (SELECT {picks} FROM {src}) {_MANY}")
    # SQLite: each shared value bound once, as a numbered parameter (?1, ?2, …: they come first in the text, so the
    # rows' plain ? marks number on after them), the rows' own values in a VALUES list (its columns are column1,
    # column2, …), all read straight into the insert's select list: 11% less a row than reading them through
    # CTEs, whose every row re-evaluated the casts.
    shared = iter(range(1, len(names) + 1))
    ref = {c: f"column{varying.index(i) + 1}" if i in varying else f"?{next(shared)}" for i, c in enumerate(names)}
    ref["now"] = "{now}"
    select = re.sub(r"\b[wn]\.(\w+)", lambda m: ref[m.group(1)], _MANY.replace(" FROM w, n", ""))
    row = "(" + ", ".join("?" * len(varying)) + ")"
    return Dialect(False).render(f"{select} FROM (VALUES {', '.join([row] * n_rows)})")


# What a retry resets: attempts start again; the old error, traceback, pause and wait state are cleared.
RETRY_SET = (
    "UPDATE djobs_jobs SET status = 'pending', attempt = 0, refunds = 0, lost = 0, run_at = {now}, "
    "completed_at = NULL, locked_by = NULL, last_error = NULL, last_traceback = NULL, "
    "pause_reason = NULL, paused_at = NULL, paused_from = NULL, pause_requested = 0, "
    "wait_kind = NULL, wait_signal = NULL, updated_at = {now} "
)
# Finished jobs old enough to delete: past their idempotency window, and not the sub-job of a parent that
# is still going (its result is what the parent's fan-out will read). The parent's status is read as a value
# (a parent already deleted counts as finished), not by NOT EXISTS, which PostgreSQL may run as a hash of
# every unfinished job, built for each batch of 500.
EXPIRED = (
    "completed_at < {stable_now} - CAST(? AS DOUBLE PRECISION) AND (unique_until IS NULL OR unique_until <= {now}) "
    "AND (parent_id IS NULL OR COALESCE((SELECT p.status FROM djobs_jobs p WHERE p.id = djobs_jobs.parent_id), "
    f"'completed') IN {TERMINAL})"
)


# A queue's jobs: pending, retrying and waiting ones from the claim's index, running ones from theirs, the rest
# from the counts' index (`schema.py`), each status counted once.
_QUEUE_COUNT = "SELECT " + " + ".join(
    f"(SELECT COUNT(*) FROM djobs_jobs WHERE queue = ? AND {part})"
    for part in (IS_CLAIMABLE, "status = 'running'", f"{NOT_HOT} AND status <> 'retrying' AND status <> 'waiting'")
)
#: How a filter on one status is said, so that either planner reads the partial index holding that status.
_STATUS_CLAUSE = {
    s: f"status = '{s}'" + ("" if s == "running" else f" AND {IS_CLAIMABLE if s == 'pending' else NOT_HOT}")
    for s in STATUS_VALUES
}


def insert_params(j: NewJob) -> tuple[Any, ...]:
    return tuple(j)  # NewJob's fields are in the insert statement's order


class JobOps(StorageBase):
    # -- writes --------------------------------------------------------------------------------------------
    @operation
    def insert_jobs(self, jobs: list[NewJob]) -> None:
        """Write new jobs, all or none. A unique key held by an active job, or by any job inside its
        idempotency window, raises DuplicateJob naming the holder; nothing is written then."""
        # A batch goes column by column: checked once per shared option, then sent as the columns that differ.
        columns = list(zip(*jobs, strict=True)) if len(jobs) > 1 else None
        validate.new_jobs(jobs, columns)
        if not jobs:
            return
        keys = [k for k in (columns[8] if columns else (jobs[0].unique_key,)) if k is not None]
        if len(keys) != len(set(keys)):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise DuplicateJob(dup, None)
        for attempt in range(3):
            try:
                self._insert_rows(jobs, columns, keys)
                break
            except Exception as exc:
                if not is_unique_violation(exc):
                    raise
                self.reset_connection()
                holder = self._key_holder(keys)
                if holder is not None:
                    raise DuplicateJob(*holder) from None
                if attempt == 2:  # the holder finished between our insert and the look-up, three times
                    raise DuplicateJob(keys[0] if keys else "", None) from None
        self.wake_local()

    def _insert_rows(self, jobs: list[NewJob], columns: list[tuple[Any, ...]] | None, keys: list[str]) -> None:
        """`columns`: the jobs' fields transposed, for a batch (None for one job)."""
        sql = self._q(_INSERT)
        if not keys and (self.is_pg or len(jobs) <= _MANY_CHUNK):
            # One statement is atomic on its own: no BEGIN/COMMIT round trips for a single enqueue, nor for a
            # batch whose rows travel in one INSERT … SELECT.
            with self._write_lock:
                if columns is None:
                    self.db.execute_sql(sql, insert_params(jobs[0]))
                else:
                    self._insert_many(columns)
            return
        with self.tx():
            if keys:
                # A key inside its window blocks even when its holder finished. An active holder is caught by
                # the partial unique index instead, which also settles two concurrent inserts of one key.
                held = self._ex(
                    f"SELECT unique_key, id FROM djobs_jobs WHERE unique_key IN ({self.dialect.marks(len(keys))}) "
                    "AND unique_until > {now} ORDER BY unique_until DESC",
                    keys,
                ).fetchone()
                if held is not None:
                    raise DuplicateJob(held[0], held[1])
            if columns is None:
                self.db.execute_sql(sql, insert_params(jobs[0]))
            else:
                self._insert_many(columns)

    def _insert_many(self, columns: list[tuple[Any, ...]]) -> None:
        """Jobs (as their columns) in as few statements as the backend allows: one on PostgreSQL, one per
        `_MANY_CHUNK` rows on SQLite (the caller holds a transaction when there are several)."""
        n = len(columns[0])
        # The id always differs; a column differs when any row's value is not the first row's.
        varying = (0, *(i for i in range(1, len(columns)) if columns[i].count(columns[i][0]) != n))
        consts = [columns[i][0] for i in range(len(columns)) if i not in varying]
        if self.is_pg:
            # One type per array: psycopg refuses a list mixing ints and floats.
            cast = [float if t == "float8" else int if t == "int" else str for _, t in _MANY_COLS]
            arrays = [[None if v is None else cast[i](v) for v in columns[i]] for i in varying]
            self.db.execute_sql(_many_sql(True, varying, 0), (*consts, *arrays))  # in the text's order
            return
        width = len(varying)
        for start in range(0, n, _MANY_CHUNK):
            rows = min(_MANY_CHUNK, n - start)
            # The rows' values interleaved, a column at a time (slice assignment: no tuple per row).
            flat: list[Any] = [None] * (rows * width)
            for j, i in enumerate(varying):
                flat[j::width] = columns[i][start : start + rows]
            self.db.execute_sql(_many_sql(False, varying, rows), consts + flat)

    def _key_holder(self, keys: list[str]) -> tuple[str, str] | None:
        if not keys:
            return None
        # Two arms, each read from its own partial index (the active holders', the windows'): one WHERE with
        # an OR of the two made SQLite scan the whole table on every duplicate.
        marks = self.dialect.marks(len(keys))
        row = self._ex(
            f"SELECT unique_key, id FROM djobs_jobs WHERE unique_key IN ({marks}) AND unique_key IS NOT NULL "
            f"AND NOT {FINISHED} UNION ALL "
            f"SELECT unique_key, id FROM djobs_jobs WHERE unique_key IN ({marks}) AND unique_until > {{now}} LIMIT 1",
            [*keys, *keys],
        ).fetchone()
        return (row[0], row[1]) if row else None

    @operation(read=True)
    def key_holder(self, key: str) -> str | None:
        """The job holding a unique key now (active, or inside its window), or None."""
        holder = self._key_holder([key])
        return holder[1] if holder else None

    @operation
    def retry_job(self, job_id: str) -> bool:
        """Requeue a failed or cancelled job: attempts start again, its old error, traceback, pause reason
        and refunds are cleared. False if it is in another state; DuplicateJob if its unique key is held by
        another job now."""
        try:
            with self.tx():
                n = self._ex(RETRY_SET + "WHERE id = ? AND status IN ('failed', 'cancelled')", (job_id,)).rowcount
                if n:
                    self._event("job_requeued", job_id, None, None, None)
                    self._notify()
        except Exception as exc:
            if not is_unique_violation(exc):
                raise
            self.reset_connection()
            key = self._ex("SELECT unique_key FROM djobs_jobs WHERE id = ?", (job_id,)).fetchone()
            k = key[0] if key else ""
            raise DuplicateJob(k or "", self.key_holder(k) if k else None) from None
        if n:
            self.wake_local()
        return bool(n)

    @operation
    def set_progress(self, job_id: str, worker_id: str, attempt: int, progress_json: str, queue: str) -> bool:
        with self.tx():
            n = self._ex(
                "UPDATE djobs_jobs SET progress = ?, updated_at = {now} "
                "WHERE id = ? AND locked_by = ? AND attempt = ? AND status = 'running'",
                (progress_json, job_id, worker_id, attempt),
            ).rowcount
            if n:
                self._event("custom:progress", job_id, queue, worker_id, progress_json)
        return bool(n)

    @operation
    def delete_jobs(self, job_ids: list[str]) -> int:
        """Delete finished jobs with their checkpoints, fan-out records, signals and events. Unfinished
        jobs are skipped (cancel them first): a running handler must never lose its row."""
        if not job_ids:
            return 0
        n = 0
        for i in range(0, len(job_ids), 500):
            chunk = job_ids[i : i + 500]
            with self.tx():
                ids = [
                    r[0]
                    for r in self._ex(
                        f"SELECT id FROM djobs_jobs WHERE id IN ({self.dialect.marks(len(chunk))}) "
                        f"AND status IN {TERMINAL}",
                        chunk,
                    ).fetchall()
                ]
                n += self._delete_rows(ids)
        return n

    def _delete_rows(self, ids: list[str]) -> int:
        """Delete job rows and everything that hangs off them (inside the caller's transaction)."""
        if not ids:
            return 0
        marks = self.dialect.marks(len(ids))
        for table, col in (
            ("djobs_checkpoints", "job_id"), ("djobs_fanouts", "parent_id"), ("djobs_signals", "job_id"),
            ("djobs_events", "job_id"),
        ):  # fmt: skip
            self._ex(f"DELETE FROM {table} WHERE {col} IN ({marks})", ids)
        return int(self._ex(f"DELETE FROM djobs_jobs WHERE id IN ({marks})", ids).rowcount)

    @operation
    def purge(self, statuses: tuple[str, ...], older_than: float, queue: str | None = None, batch: int = 500) -> int:
        """Delete finished jobs of these statuses that finished more than `older_than` seconds ago (once
        their idempotency window is over and their parent has finished), in batches of `batch` so no
        transaction holds a long lock."""
        bad = [s for s in statuses if s not in TERMINAL_VALUES]
        if bad:
            raise ValueError(f"purge only deletes finished jobs, not {', '.join(bad)}")
        if not statuses:
            return 0
        validate.seconds("older_than", older_than)
        # FINISHED beside the statuses: SQLite proves the finished jobs' index usable from that term, not
        # from a list of some of them (without it, every batch read the whole table).
        where = f"{FINISHED} AND status IN ({self.dialect.marks(len(statuses))}) AND " + EXPIRED
        params: list[Any] = [*statuses, older_than]
        if queue is not None:
            where += " AND queue = ?"
            params.append(queue)
        total = 0
        while True:
            with self.tx():
                ids = [r[0] for r in self._ex(f"SELECT id FROM djobs_jobs WHERE {where} LIMIT ?", (*params, batch))]
                total += self._delete_rows(ids)
            if len(ids) < batch:
                return total

    # -- reads ---------------------------------------------------------------------------------------------
    @operation(read=True)
    def get_job(self, job_id: str) -> Job | None:
        row = self._ex(_SELECT + "WHERE id = ?", (job_id,)).fetchone()
        return records.job(row) if row else None

    def _filters(
        self, status: str | None, queue: str | None, type: str | None, meta: dict[str, Any] | None  # noqa: A002
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if status is not None and str(status) in _STATUS_CLAUSE:
            # Said as a literal with its index's condition, so that either planner may read that partial index
            # (neither can prove a bound parameter's value inside an index's condition).
            clauses.append(_STATUS_CLAUSE[str(status)])
            status = None
        for col, val in (("status", status), ("queue", queue), ("type", type)):
            if val is not None:
                clauses.append(f"{col} = ?")
                params.append(str(val))
        for k, v in (meta or {}).items():
            validate.name("meta key", k)
            if self.is_pg:
                clauses.append("meta IS NOT NULL AND CAST(meta AS jsonb) -> ? = CAST(? AS jsonb)")
            else:
                clauses.append("json_valid(meta) AND (meta -> ('$.' || json_quote(?))) = json(?)")
            params.extend((k, codec.dumps(v)))
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    @operation(read=True)
    def list_jobs(
        self,
        status: str | None = None,
        queue: str | None = None,
        type: str | None = None,  # noqa: A002
        limit: int = 50,
        offset: int = 0,
        meta: dict[str, Any] | None = None,
    ) -> list[Job]:
        """Jobs newest first, filtered."""
        where, params = self._filters(status, queue, type, meta)
        rows = self._ex(
            _SELECT + where + " ORDER BY id DESC LIMIT ? OFFSET ?",
            (*params, _page(limit), _page(offset)),
        ).fetchall()
        return [records.job(r) for r in rows]

    @operation(read=True)
    def job_summaries(
        self,
        status: str | None = None,
        queue: str | None = None,
        type: str | None = None,  # noqa: A002
        limit: int = 50,
        offset: int = 0,
        preview: int = 200,
        meta: dict[str, Any] | None = None,
    ) -> list[JobSummary]:
        where, params = self._filters(status, queue, type, meta)
        n = max(1, min(int(preview), 100_000))
        rows = self._ex(
            _SUMMARY + where + " ORDER BY id DESC LIMIT ? OFFSET ?",
            (n + 1, n + 1, *params, _page(limit), _page(offset)),
        ).fetchall()
        return [records.summary(r, r[16], r[17], n) for r in rows]

    @operation(read=True)
    def count_jobs(
        self, status: str | None = None, queue: str | None = None, type: str | None = None,  # noqa: A002
        meta: dict[str, Any] | None = None,
    ) -> int:  # fmt: skip
        if queue is not None and status is None and type is None and not meta:
            # A queue's jobs of every status: the sum over the partial indexes (no index holds every job by queue).
            return int(self._indexed(_QUEUE_COUNT, (str(queue),) * 3)[0][0])
        where, params = self._filters(status, queue, type, meta)
        if type is None and not meta and str(status) in _STATUS_CLAUSE:
            return int(self._indexed("SELECT COUNT(*) FROM djobs_jobs " + where, params)[0][0])
        return int(self._ex("SELECT COUNT(*) FROM djobs_jobs " + where, params).fetchone()[0])

    @operation(read=True)
    def sub_jobs(self, job_id: str, limit: int | None = None) -> list[Job]:
        rows = self._ex(
            _SELECT + "WHERE parent_id = ? ORDER BY created_at, fanout_pos LIMIT ?",
            (job_id, _page(limit) if limit is not None else 2**62),
        ).fetchall()
        return [records.job(r) for r in rows]

    @operation(read=True)
    def count_sub_jobs(self, job_id: str) -> int:
        return int(self._ex("SELECT COUNT(*) FROM djobs_jobs WHERE parent_id = ?", (job_id,)).fetchone()[0])

    @operation(read=True)
    def dead_letters(
        self, queue: str | None = None, type: str | None = None, limit: int = 50, since: float | None = None  # noqa: A002
    ) -> list[Job]:
        """Failed jobs, newest failure first."""
        where, params = self._filters("failed", queue, type, None)
        if since is not None:
            where += " AND completed_at >= ?"
            params.append(since)
        rows = self._ex(_SELECT + where + " ORDER BY completed_at DESC, id DESC LIMIT ?", (*params, _page(limit)))
        return [records.job(r) for r in rows.fetchall()]


def _page(n: int | None) -> int:
    """LIMIT/OFFSET values both backends accept (a huge --limit is simply "everything")."""
    return max(0, min(int(n or 0), 2**62))
