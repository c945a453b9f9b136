"""The hot path: one transaction per dispatcher round writes the outcomes of finished attempts and claims
into the freed slots.

Claim order: priority high→low, then due time, then id. Paused and limited queues and paused workers are
excluded inside the claim statement itself (a limited queue is claimed by `limits.py` instead). Every
outcome write is guarded by ownership (`dialect.OWNED`): a write that matches nothing means another party
took the job, and the caller drops the outcome silently.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from djobs.jobs import MAX_REFUNDS
from djobs.storage import records
from djobs.storage.base import Row, StorageBase
from djobs.storage.dialect import BY_ID, COL, IS_CLAIMABLE, OWNED
from djobs.storage.errors import operation
from djobs.storage.limits import LOCKED, locked_rows

if TYPE_CHECKING:
    from djobs.outcomes import Claim, ClaimRequest, Outcome, RoundResult

_D = "DOUBLE PRECISION"
#: A prefetched claim whose start is not yet recorded: (job id, attempt, monotonic time it started).
StartedHeld = tuple[str, int, float]
_PICK = (
    f"SELECT id FROM djobs_jobs WHERE queue = ? AND {IS_CLAIMABLE} AND run_at <= {{now}} AND type IN ({{types}}) "
    "AND NOT EXISTS (SELECT 1 FROM djobs_queues q WHERE q.name = ? AND (q.paused = 1 OR q.limited = 1)) "
    "AND NOT EXISTS (SELECT 1 FROM djobs_workers w WHERE w.id = ? AND w.paused = 1) "
    "ORDER BY priority DESC, run_at, id LIMIT ?"
)
_TAKE = (
    "status = 'running', attempt = {a}attempt + 1, locked_by = ?, held = ?, started_at = {{now}}, "
    "last_heartbeat_at = {{now}}, updated_at = {{now}}, wait_kind = NULL, wait_signal = NULL"
)
_FAIL = (
    "UPDATE djobs_jobs SET status = 'failed', last_error = ?, last_traceback = ?, completed_at = {now}, "
    f"updated_at = {{now}}, locked_by = NULL, pause_requested = 0, refunds = 0 WHERE {OWNED}"
)
# A graceful pause requested while the job ran turns its retry into `paused` (resumable).
_RETRY = (
    "UPDATE djobs_jobs SET "
    "status = CASE WHEN pause_requested = 1 THEN 'paused' ELSE 'retrying' END, "
    "paused_from = CASE WHEN pause_requested = 1 THEN 'retrying' ELSE paused_from END, "
    "paused_at = CASE WHEN pause_requested = 1 THEN {now} ELSE paused_at END, "
    f"pause_requested = 0, last_error = ?, last_traceback = ?, run_at = {{now}} + CAST(? AS {_D}), "
    f"updated_at = {{now}}, locked_by = NULL, refunds = 0 WHERE {OWNED}"
)
# Give a claimed job back untouched, its attempt refunded — unless it was given back MAX_REFUNDS times in a
# row already: then it fails, so no stop/pause/outage pattern can loop it forever.
_SPENT = f"refunds >= {MAX_REFUNDS}"
_REFUND_SET = (
    f"status = CASE WHEN {_SPENT} THEN 'failed' ELSE 'pending' END, "
    f"attempt = CASE WHEN {_SPENT} THEN attempt ELSE attempt - 1 END, "
    f"last_error = CASE WHEN {_SPENT} THEN ? ELSE last_error END, "
    f"completed_at = CASE WHEN {_SPENT} THEN {{now}} ELSE completed_at END, "
    "refunds = refunds + 1, locked_by = NULL, held = 0, updated_at = {now}"
)
REFUND_ERROR = (
    f"given back {MAX_REFUNDS + 1} times in a row without finishing (worker stops, pauses or lost database "
    "connections); failed so it cannot loop"
)
_RELEASE = f"UPDATE djobs_jobs SET {_REFUND_SET} WHERE {OWNED} RETURNING id, status, fanout_id"
_RELEASE_ALL = (
    f"UPDATE djobs_jobs SET {_REFUND_SET} WHERE locked_by = ? AND status = 'running' RETURNING id, status, fanout_id"
)


class ClaimOps(StorageBase):
    def _claim_ctes(self, n_types: int, pair: bool) -> str:
        """PostgreSQL: a claim as CTEs, `c` the jobs picked and locked, `u` them taken (`RETURNING {jcols}, n`:
        for a claim and its prefetch, each job's place in claim order; held when past the first `?`). The
        claim statements here and the one-statement rounds (`fused.py`) share them."""
        # The LIMIT as a subquery: a planner that cannot see it in any plan prices the generic plan like the
        # custom ones and keeps it, instead of planning every round afresh because a LIMIT it sees (custom)
        # looks cheaper than one it cannot (generic). Planning was a third of an unlimited round once the
        # table had statistics (1.5 against 0.9 ms a round). The generic plan reads the claim index in order
        # whatever the backlog (`tests/test_pg_backlog.py`).
        pick = _PICK.replace("{types}", self.dialect.marks(n_types)).replace("LIMIT ?", "LIMIT (SELECT CAST(? AS BIGINT))")
        take = _TAKE.format(a="j.")
        if not pair:
            return (
                f"c AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED), u AS (UPDATE djobs_jobs j SET {take} "
                f"WHERE {BY_ID} RETURNING {{jcols}}, CAST(NULL AS BIGINT) AS n)"
            )
        pick = pick.replace("SELECT id FROM", "SELECT id, priority, run_at FROM", 1)
        take = take.replace("held = ?", "held = CASE WHEN o.n > ? THEN 1 ELSE 0 END")
        return (
            f"c AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED), "
            "o AS (SELECT id, row_number() OVER (ORDER BY priority DESC, run_at, id) AS n FROM c), "
            f"u AS (UPDATE djobs_jobs j SET {take} FROM o WHERE j.id = o.id AND {BY_ID} RETURNING {{jcols}}, o.n)"
        )

    def _claim_sql(self, n_types: int) -> str:
        key = f"claim:{n_types}"
        sql = self._statements.get(key)
        if sql is None:
            if self.is_pg:
                sql = f"WITH {self._claim_ctes(n_types, False)} SELECT * FROM u"
            else:
                pick = _PICK.replace("{types}", self.dialect.marks(n_types))
                sql = f"UPDATE djobs_jobs SET {_TAKE.format(a='')} WHERE id IN ({pick}) RETURNING {{cols}}"
            sql = self._statements[key] = self.dialect.render(sql)
        return sql

    def _claim_pair(self, worker_id: str, now: ClaimRequest, ahead: ClaimRequest) -> list[Row]:
        """PostgreSQL: a claim for free slots and the prefetch behind it (same queue and types) in one
        statement, a round trip less per round. The first `now.limit` jobs in claim order start now, the rest
        are held; each row ends with its place in that order."""
        key = f"claim-pair:{len(now.types)}"
        sql = self._statements.get(key)
        if sql is None:
            sql = self._statements[key] = self.dialect.render(f"WITH {self._claim_ctes(len(now.types), True)} SELECT * FROM u")
        params = (now.queue, *now.types, now.queue, worker_id, now.limit + ahead.limit, worker_id, now.limit)
        return list(self.db.execute_sql(sql, params).fetchall())

    @staticmethod
    def _pairs(claims: list[ClaimRequest], k: int) -> bool:
        """Claims k and k+1 are a claim for free slots and its prefetch (what a dispatcher asks each round)."""
        if k + 1 >= len(claims):
            return False
        a, b = claims[k], claims[k + 1]
        return not a.held and b.held and not a.limited and not b.limited and (a.queue, a.types) == (b.queue, b.types)

    def _claim(self, worker_id: str, req: ClaimRequest) -> list[Row]:
        pick = (req.queue, *req.types, req.queue, worker_id, req.limit)
        take = (worker_id, int(req.held))
        params = (*pick, *take) if self.is_pg else (*take, *pick)
        return list(self.db.execute_sql(self._claim_sql(len(req.types)), params).fetchall())

    def _batch_update(self, name: str, cols: tuple[str, ...], assignments: str, returning: str) -> str:
        """UPDATE djobs_jobs from a batch of (id, attempt, …) rows, guarded by ownership: the batch joined to
        the table on the primary key. On SQLite the batch is materialised first, so the plan walks the batch
        and looks each row up by id (left to itself, the planner walks this worker's running jobs and decodes
        the JSON once per job)."""
        sql = self._statements.get(name)
        if sql is not None:
            return sql
        guard = "AND djobs_jobs.locked_by = ? AND djobs_jobs.status = 'running'"
        sets = assignments.format(v="v")
        if self.is_pg:
            head, src = "", self.dialect.batch_source(cols)
        else:
            picks = ", ".join(f"value ->> {i}" for i in range(len(cols)))
            head, src = f"WITH v({', '.join(cols)}) AS MATERIALIZED (SELECT {picks} FROM json_each(?)) ", "v"
        sql = (
            f"{head}UPDATE djobs_jobs SET {sets} FROM {src} WHERE djobs_jobs.id = v.id "
            f"AND djobs_jobs.attempt = CAST(v.a AS INTEGER) {guard} RETURNING {returning}"
        )
        sql = self._statements[name] = self.dialect.render(sql)
        return sql

    @staticmethod
    def _since(started: Sequence[StartedHeld]) -> dict[tuple[str, int], str]:
        """Seconds since each prefetched claim started (the worker's monotonic clock), as batch text. The
        start is stored as the database clock minus this, so every stored time stays on the database's clock
        and the run's duration is still the worker's measure."""
        now = time.monotonic()
        return {(i, a): f"{max(0.0, now - t):.6f}" for i, a, t in started}

    def _mark_started_sql(self) -> str:
        return self._batch_update(
            "mark_started", ("id", "a", "e"), f"held = 0, started_at = {{{{now}}}} - CAST({{v}}.e AS {_D})", "djobs_jobs.id"
        )

    def _mark_started(self, started: dict[tuple[str, int], str], worker_id: str) -> None:
        """Prefetched claims that have now started: no longer held."""
        rows = [(i, str(a), e) for (i, a), e in started.items()]
        self.db.execute_sql(self._mark_started_sql(), (*self._batch_params(rows), worker_id))

    def _complete_sql(self) -> str:
        return self._batch_update(
            "complete_many",
            ("id", "r", "a", "e"),
            "status = 'completed', result = {v}.r, completed_at = {{now}}, updated_at = {{now}}, "
            f"started_at = CASE WHEN {{v}}.e IS NULL THEN started_at ELSE {{{{now}}}} - CAST({{v}}.e AS {_D}) END, "
            "held = 0, locked_by = NULL, pause_requested = 0, refunds = 0",
            "djobs_jobs.id, djobs_jobs.queue, djobs_jobs.job_key",
        )

    def _complete_many(
        self, done: list[Outcome], worker_id: str, started: dict[tuple[str, int], str], lock: list[str] | None = None
    ) -> tuple[set[str], dict[str, Row] | None]:
        """Completions in one statement. A prefetched claim that started and finished since the last round
        has its start recorded here too (`e` set), instead of in a statement of its own. With `lock`
        (PostgreSQL), the statement also locks those limited queues' rows and returns them (`LOCKED`): the
        claims that follow need no round trip of their own for the lock."""
        sql = self._complete_sql()
        rows = [(o.job_id, o.result_json, str(o.attempt), started.pop((o.job_id, o.attempt), None)) for o in done]
        params: tuple[Any, ...] = (*self._batch_params(rows), worker_id)
        if lock:
            merged = self._statements.get("complete_many+lock")
            if merged is None:
                merged = self._statements["complete_many+lock"] = (
                    f"WITH l AS MATERIALIZED ({self._q(LOCKED)}), u AS ({sql}) "
                    "SELECT id, NULL FROM u UNION ALL SELECT name, q FROM l"
                )
            sql, params = merged, (lock, *params)
        got = self.db.execute_sql(sql, params).fetchall()
        if not lock:
            return {r[0] for r in got}, None
        return {r[0] for r in got if r[1] is None}, locked_rows(got)

    def _write_outcome(self, o: Outcome, worker_id: str, failed: list[tuple[str, str | None]]) -> bool:
        from djobs.outcomes import OutcomeKind

        own = (o.job_id, worker_id, o.attempt)
        if o.kind is OutcomeKind.FAIL:
            return bool(self._ex(_FAIL, (o.error, o.traceback, *own)).rowcount > 0)
        if o.kind is OutcomeKind.RETRY:
            return bool(self._ex(_RETRY, (o.error, o.traceback, o.delay, *own)).rowcount > 0)
        row = self._ex(_RELEASE, (REFUND_ERROR, *own)).fetchone()
        if row is not None and row[1] == "failed":
            failed.append((row[0], row[2]))
        return row is not None

    @operation
    def cycle(
        self,
        worker_id: str,
        outcomes: list[Outcome],
        claims: list[ClaimRequest],
        events: Sequence[Row] = (),
        started: Sequence[StartedHeld] = (),
        started_events: bool = True,
        due_if_idle: bool = False,
        turn: int = 0,
        limited_done: bool = False,
    ) -> RoundResult:
        """One round in one transaction: record the start of prefetched claims, write outcomes (each
        guarded by ownership; completions in one statement) with the event rows of those that matched,
        extra event rows, then claim. Returns which outcomes were written and the claims won."""
        since = self._since(started) if started else {}
        if self.is_pg:
            fused = self._fused_round(worker_id, outcomes, claims, events, since, started_events, turn, limited_done)
            if fused is not None:
                return fused
        return self._cycle_tx(worker_id, outcomes, claims, events, since, started_events, due_if_idle, turn, limited_done)

    def _fused_round(
        self, worker_id: str, outcomes: list[Outcome], claims: list[ClaimRequest], events: Sequence[Row],
        since: dict[tuple[str, int], str], started_events: bool, turn: int, limited_done: bool,
    ) -> RoundResult | None:  # fmt: skip
        """PostgreSQL: the round as one statement when it can be (`fused.py`); None: it cannot."""
        return None

    def _cycle_tx(
        self, worker_id: str, outcomes: list[Outcome], claims: list[ClaimRequest], events: Sequence[Row],
        since: dict[tuple[str, int], str], started_events: bool, due_if_idle: bool, turn: int, limited_done: bool,
    ) -> RoundResult:  # fmt: skip
        from djobs.outcomes import Claim, OutcomeKind, RoundResult

        owned = [False] * len(outcomes)
        rows: list[Row] = list(events)
        failed: list[tuple[str, str | None]] = []
        won: list[Claim] = []
        with self.tx():
            done = [o for o in outcomes if o.kind is OutcomeKind.COMPLETE]
            # PostgreSQL: the limited queues' rows are locked first, all at once (see limits.LOCKED).
            lock = sorted({c.queue for c in claims if c.limited}) if self.is_pg else []
            completed, locked = self._complete_many(done, worker_id, since, lock) if done else (set(), None)
            if lock and locked is None:
                locked = self._lock_limited(lock)  # type: ignore[attr-defined]
            if since:  # the rest: still running, or ended otherwise (written below, after their start)
                self._mark_started(since, worker_id)
            for i, o in enumerate(outcomes):
                owned[i] = o.job_id in completed if o.kind is OutcomeKind.COMPLETE else self._write_outcome(o, worker_id, failed)
                if owned[i] and o.event is not None:
                    rows.append((o.event[0], o.job_id, o.queue, worker_id, o.event[1]))
            retry: float | None = None
            paired = -1
            for k, req in enumerate(claims):
                if k == paired:
                    continue
                if self.is_pg and self._pairs(claims, k):
                    paired = k + 1
                    for r in self._claim_pair(worker_id, req, claims[k + 1]):
                        won.append(Claim(records.job(r), r[COL["fanout_id"]], k if r[-1] <= req.limit else k + 1, r[COL["trace"]]))
                    continue
                if req.limited:
                    got, again = self._claim_limited(worker_id, req, turn, locked)  # type: ignore[attr-defined]
                    if again is not None:
                        retry = again if retry is None else min(retry, again)
                else:
                    got = self._claim(worker_id, req)
                for r in got:
                    won.append(Claim(records.job(r), r[COL["fanout_id"]], k, r[COL["trace"]]))
            if limited_done:
                self._notify()  # places under a running limit came free: workers waiting on it look again
            if started_events:
                # Written with the claim, prefetched or not, so it precedes anything the handler logs.
                rows.extend(
                    ("job_started", c.job.id, c.job.queue, worker_id, f'{{"attempt":{c.job.attempt}}}') for c in won
                )
            self._events_many(rows)
            due = None
            if due_if_idle and claims and not won and not outcomes:
                due = self._next_due([c.queue for c in claims])
                # A job held back by a limit is due now but not claimable: try again when the limit allows.
                if retry is not None or any(c.limited for c in claims):
                    due = retry if retry is not None else None
        return RoundResult(owned, won, failed, due, retry)

    @operation
    def release_all(self, worker_id: str) -> list[tuple[str, str, str | None]]:
        """Give back every job this worker runs (its drain timed out): (id, new status, fan-out id)."""
        with self.tx():
            rows = [(r[0], r[1], r[2]) for r in self._ex(_RELEASE_ALL, (REFUND_ERROR, worker_id)).fetchall()]
            if rows:
                self._notify()
        self.taken([r[0] for r in rows])
        return rows

    @operation
    def release_claims(self, worker_id: str, claims: list[tuple[str, int]]) -> int:
        """Give claims (job id, attempt) back, attempt refunded, if this worker still holds them."""
        n = 0
        with self.tx():
            for job_id, attempt in claims:
                n += int(self._ex(_RELEASE, (REFUND_ERROR, job_id, worker_id, attempt)).fetchone() is not None)
            if n:
                self._notify()
        self.wake_local()
        return n

    @operation(read=True)
    def owned_running(self, worker_id: str) -> set[tuple[str, int]]:
        """(job id, attempt) of every claim this worker still holds."""
        rows = self._ex("SELECT id, attempt FROM djobs_jobs WHERE locked_by = ? AND status = 'running'", (worker_id,))
        return {(r[0], int(r[1])) for r in rows.fetchall()}

    @operation(read=True)
    def next_due(self, queues: list[str]) -> float | None:
        """The earliest time a job of these queues becomes claimable (epoch seconds), or None: an idle
        worker sleeps until then (or a wake-up), so delayed jobs, retries and sleepers cost no polling."""
        return self._next_due(queues)

    def _next_due(self, queues: list[str]) -> float | None:
        queues = sorted(set(queues))
        if not queues:
            return None
        row = self._ex(
            f"SELECT MIN(run_at) FROM djobs_jobs WHERE queue IN ({self.dialect.marks(len(queues))}) "
            f"AND {IS_CLAIMABLE}",
            queues,
        ).fetchone()
        return None if row[0] is None else float(row[0])

    @operation
    def heartbeat_jobs(self, worker_id: str) -> None:
        """Refresh `last_heartbeat_at` of this worker's running jobs (informational; the rescuer reads the
        worker row). Skips rows the dispatcher holds locked."""
        with self.tx():
            if self.is_pg:
                self._ex(
                    "UPDATE djobs_jobs SET last_heartbeat_at = {now} WHERE id IN (SELECT id FROM djobs_jobs "
                    "WHERE locked_by = ? AND status = 'running' ORDER BY id FOR UPDATE SKIP LOCKED)",
                    (worker_id,),
                )
            else:
                self._ex(
                    "UPDATE djobs_jobs SET last_heartbeat_at = {now} WHERE locked_by = ? AND status = 'running'",
                    (worker_id,),
                )
