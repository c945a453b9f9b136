"""The two SQL dialects, rendered from one text.

Statements are written with `?` placeholders, `{now}` for the database clock and `{cols}` / `{jcols}` for
the job columns, then rendered for the dialect once (by the storage's constructor or at first use). One
byte-identical text per statement lets psycopg 3 prepare it server-side after a few executions; sending it
with `execute_sql` skips Peewee's query builder, which costs more than the driver.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from djobs.jobs import ACTIVE_VALUES, TERMINAL_VALUES

JOB_COLS = (
    "id", "type", "queue", "args", "priority", "status", "attempt", "max_retries", "last_error", "result",
    "run_at", "started_at", "completed_at", "created_at", "updated_at", "last_heartbeat_at", "locked_by",
    "unique_key", "parent_id", "fanout_id", "fanout_pos", "paused_from", "paused_at", "pause_reason",
    "pause_requested", "progress", "timeout", "job_key", "meta", "last_traceback", "refunds", "wait_kind",
    "wait_signal", "unique_until", "backoff", "trace",
)  # fmt: skip
COL = {c: i for i, c in enumerate(JOB_COLS)}
COLS = ", ".join(JOB_COLS)
J_COLS = ", ".join(f"j.{c}" for c in JOB_COLS)


def sql_list(values: tuple[str, ...]) -> str:
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


TERMINAL = sql_list(TERMINAL_VALUES)


def status_is(values: tuple[str, ...]) -> str:
    """`status` is one of `values`, as comparisons joined by OR rather than `status IN (…)`. SQLite's partial
    indexes say their statuses so: SQLite evaluates an IN list in an index's WHERE far more slowly than ORed
    comparisons, on every row a statement writes (measured: 1.7 µs more per single-row insert and index; a
    batch insert of no-op jobs 5.6 -> 4.8 µs a job). Queries say the same term, so either backend's planner
    can prove a partial index usable (SQLite proves it from that term or one of its comparisons)."""
    return "(" + " OR ".join(f"status = '{v}'" for v in values) + ")"


#: Finished jobs: the predicate of their index. A statement naming one finished status may use that index
#: on both backends (a comparison implies the OR it is part of).
FINISHED = status_is(TERMINAL_VALUES)
ACTIVE = sql_list(ACTIVE_VALUES)
#: What a claim takes once due: pending and retrying jobs, and waiting jobs whose timer is due (sleepers,
#: signal waits past their timeout). Waiting jobs with nothing to wake them keep `run_at` at WAIT_FOREVER.
CLAIMABLE_VALUES = ("pending", "retrying", "waiting")
IS_CLAIMABLE = status_is(CLAIMABLE_VALUES)
#: Every status but the two each job passes through on its way (pending, running): the predicate of the index
#: the counts by queue and status read, which a job enters only when it finishes (or retries, waits or is
#: paused). `status = 'x' AND NOT_HOT` lets SQLite use it for one status (it proves an index's condition
#: only from the same terms).
NOT_HOT = "status <> 'pending' AND status <> 'running'"
#: `run_at` of a waiting job that only an event wakes (a fan-out's decision, a signal with no timeout):
#: 9999-12-31T23:59:59Z, past any time a user may give (`at` is validated to year 9999).
WAIT_FOREVER = 253402300799.0

SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
PG_NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
#: `{stable_now}`: the clock for reads that bound an index scan by time (retention, the event trim, the stats'
#: last minute). `clock_timestamp()` is volatile, so PostgreSQL can neither bound a scan with it nor estimate
#: how many rows a comparison keeps: a retention pass with nothing to delete read every finished job's index
#: entry (200 ms over 300,000). The statement's start time is stable. The writes keep `{now}`: a statement that
#: waited for a lock must stamp the time it got it (see `limits.py`).
PG_STABLE_NOW = "CAST(EXTRACT(EPOCH FROM statement_timestamp()) AS DOUBLE PRECISION)"
D = "DOUBLE PRECISION"
#: A never-started claim of a dead worker gets its attempt back at most this often.
MAX_LOST_REFUNDS = 3
#: Ownership is per claim, not per worker: the attempt number changes at every claim, so a worker that
#: claims the same job again (after it was reclaimed or paused) does not own the older execution.
OWNED = "id = ? AND locked_by = ? AND attempt = ? AND status = 'running'"
#: PostgreSQL: how a claim's update finds the rows its pick `c` chose. Joined (`FROM c WHERE j.id = c.id`),
#: the planner guesses a pick whose LIMIT it cannot see (a subquery, a parameter of a generic plan) returns a
#: tenth of the due jobs, and past a few thousand of them it hashes the whole jobs table to join ten rows
#: (58 ms a round with 200,000 jobs waiting). As an array it is a look-up of the primary key per id.
BY_ID = "j.id = ANY(ARRAY(SELECT id FROM c))"


@functools.lru_cache(maxsize=64)
def _batch_source(is_pg: bool, cols: tuple[str, ...]) -> str:
    if is_pg:
        picks = ", ".join(f"x ->> {i} AS {c}" for i, c in enumerate(cols))
        return f"(SELECT {picks} FROM jsonb_array_elements(%s::jsonb) AS x) AS v"
    picks = ", ".join(f"value ->> {i} AS {c}" for i, c in enumerate(cols))
    return f"(SELECT {picks} FROM json_each(?)) AS v"


@dataclass(frozen=True)
class Dialect:
    is_pg: bool

    @property
    def now(self) -> str:
        return PG_NOW if self.is_pg else SQLITE_NOW

    def render(self, sql: str) -> str:
        sql = sql.replace("{now}", self.now).replace("{cols}", COLS).replace("{jcols}", J_COLS)
        sql = sql.replace("{stable_now}", PG_STABLE_NOW if self.is_pg else SQLITE_NOW)
        return sql.replace("?", "%s") if self.is_pg else sql

    @property
    def for_update(self) -> str:
        """Row lock inside a transaction: PostgreSQL only (SQLite's BEGIN IMMEDIATE already serialises)."""
        return " FOR UPDATE" if self.is_pg else ""

    def batch_source(self, cols: tuple[str, ...]) -> str:
        """A batch of rows as one parameter-bound relation `v(cols…)` of text values, so a batched statement
        keeps one constant text: one JSON document of rows (`StorageBase._batch_params`), parsed once by
        jsonb on PostgreSQL (which costs half of binding a text array per column: psycopg dumps arrays in
        Python) and by json_each on SQLite. The same string object for the same columns (hot paths key
        their rendered statements on it)."""
        return _batch_source(self.is_pg, cols)

    def marks(self, n: int) -> str:
        """`?, ?, ?` for an IN list (rendered later)."""
        return ", ".join("?" * n) if n else "NULL"
