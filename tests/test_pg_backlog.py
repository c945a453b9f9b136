"""PostgreSQL under a backlog: the claim and upkeep statements keep reading the tables by index once big.

The planner prices a statement from the table's statistics, so what a worker's round costs can change when
the jobs table grows, without a line of djobs changing. Two ways it did, both caught here on a table of
30,000 waiting jobs with fresh statistics:

- a pick whose LIMIT the planner cannot see (a subquery, or a parameter of a generic plan) is guessed to
  return a tenth of the due jobs, and the update joined to it hashed the whole jobs table to find ten rows;
- a plan priced that high passes `jit_above_cost`, and PostgreSQL compiled it to machine code on every run
  (~100 ms a round for a statement that runs in 1 ms).

The plans are asked both ways the server may run a prepared statement: with the round's values (a custom
plan) and without them (the generic plan the server switches to after a few runs).

The leader's upkeep (retention, the event trim) and the queue stats compare times with the database clock,
`clock_timestamp()`, which is volatile: compared directly, it cannot bound an index scan, and a retention
pass with nothing to delete walked every finished job's index entry to find none. Those statements run
here for real, with nothing to do, and may read only a handful of rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from dbsql import record_statements
from dbsql import sql as run_sql

import djobs
from djobs.jobs import NewJob, Retention, new_id
from djobs.outcomes import ClaimRequest, Outcome, OutcomeKind
from djobs.storage import PeeweeStorage

BACKLOG = 30_000


@pytest.fixture
def big(pg_url: str) -> Iterator[PeeweeStorage]:
    store = djobs.connect(pg_url)
    try:
        # Keyed jobs and, one in ten, jobs without a key: a queue under per-key limits may hold both.
        keys = [None if i % 10 == 0 else f"k{i % 20}" for i in range(BACKLOG)]
        # Four queues' jobs interleaved: the claim's queue is not where its rows lie on disk.
        queues = ["default", "other", "third", "fourth"]
        jobs = [NewJob(new_id(), "t", queues[i % 4], "{}", 0, 0, key=k) for i, k in enumerate(keys)]
        for start in range(0, BACKLOG, 2000):
            store.insert_jobs(jobs[start : start + 2000])
        store.db.execute_sql("ANALYZE djobs_jobs")
        yield store
    finally:
        store.close()


def _generic_plan(conn: Any, sql: str, params: Any) -> str:
    """The plan the server would keep for `sql` once it stops planning it per run."""
    from psycopg import sql as psql

    marks = iter(range(1, 10_000))
    text = re.sub(r"%s", lambda _: f"${next(marks)}", sql)
    values = psql.SQL(", ").join(psql.Literal(p) for p in params or ())
    with conn.transaction(force_rollback=True):
        cur = conn.cursor()
        cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cur.execute("PREPARE djobs_probe AS " + text)
        try:
            cur.execute(psql.SQL("EXPLAIN EXECUTE djobs_probe({})").format(values) if params else "EXPLAIN EXECUTE djobs_probe")
            return "\n".join(r[0] for r in cur.fetchall())
        finally:
            cur.execute("DEALLOCATE djobs_probe")


def _custom_plan(conn: Any, sql: str, params: Any) -> str:
    with conn.transaction(force_rollback=True):
        cur = conn.cursor()
        cur.execute("EXPLAIN " + sql, params)
        return "\n".join(r[0] for r in cur.fetchall())


def test_connections_never_jit_compile_unless_the_url_says_so(pg_url: str) -> None:
    store = djobs.connect(pg_url)
    try:
        assert store.db.execute_sql("SHOW jit").fetchone()[0] == "off"
    finally:
        store.close()
    store = djobs.connect(pg_url + "&options=-c%20jit%3Don")
    try:
        assert store.db.execute_sql("SHOW jit").fetchone()[0] == "on"
    finally:
        store.close()


@pytest.mark.parametrize("variant", ["plain", "prefetch", "queue limits", "per-key limits"])
def test_claim_rounds_under_a_backlog_read_the_jobs_by_index(
    big: PeeweeStorage, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    store = big
    if variant == "queue limits":
        store.set_limits("default", djobs.Rate(1e8, 1), 1_000_000, None, None)
    elif variant == "per-key limits":
        store.set_limits("default", None, None, djobs.Rate(1e8, 1), 1_000_000)
    limited = variant.endswith("limits")
    claims = [ClaimRequest("default", ("t",), 10, False, limited)]
    if variant == "prefetch":
        claims.append(ClaimRequest("default", ("t",), 5, True))
    sent = record_statements(store, monkeypatch)
    done: list[Any] = []
    for turn in range(3):  # a first round claims in a transaction; the next ones complete and claim at once
        outcomes = [Outcome(OutcomeKind.COMPLETE, c.job.id, c.job.attempt, result_json="null") for c in done]
        done = store.cycle("w1", outcomes, claims, (), (), False, False, turn).claims
        assert len(done) == 15 if variant == "prefetch" else 10
    monkeypatch.undo()
    claiming = [(sql, params) for sql, params in sent if "UPDATE djobs_jobs" in sql and "'running'" in sql]
    assert claiming, "no claim statement was sent"
    conn = store.db.connection()
    for sql, params in claiming:
        for how, plan in (("custom", _custom_plan(conn, sql, params)), ("generic", _generic_plan(conn, sql, params))):
            assert "Seq Scan on djobs_jobs" not in plan, f"{variant}, {how} plan reads every job:\n{sql}\n{plan}"


def test_upkeep_with_nothing_to_do_reads_a_handful_of_rows(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = djobs.connect(pg_url)
    try:
        jobs = [NewJob(new_id(), "t", "default", "{}", 0, 0) for _ in range(BACKLOG)]
        for start in range(0, BACKLOG, 2000):
            store.insert_jobs(jobs[start : start + 2000])
        # Finished two minutes ago, each with an event: none is old enough for a retention of an hour, nor
        # recent enough for the stats' last minute.
        run_sql(store, "UPDATE djobs_jobs SET status = 'completed', completed_at = {now} - 120")
        run_sql(
            store,
            "INSERT INTO djobs_events (ts, kind, job_id, queue, worker_id, data) "
            "SELECT {now} - 120, 'job_completed', id, queue, 'w', '{}' FROM djobs_jobs",
        )
        run_sql(store, "ANALYZE")
        sent = record_statements(store, monkeypatch)
        assert store.apply_retention(Retention(completed=3600.0, failed=3600.0)) == {}
        assert store.trim_events(3600.0, 10 * BACKLOG) == 0
        store.queue_stats()
        monkeypatch.undo()
        reading = [(t, p) for t, p in sent if re.search(r"FROM djobs_(jobs|events)\b", t) and "completed_at" in t or "ts <" in t]
        assert len(reading) >= 3, "the retention, trim and stats statements were not all seen"
        conn = store.db.connection()
        for text, params in reading:
            with conn.transaction(force_rollback=True):
                cur = conn.cursor()
                cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + text, params)
                plan = cur.fetchone()[0][0]["Plan"]
            read = _rows_read(plan)
            assert read < 100, f"{read} rows read to find nothing to do:\n{text}"
            generic = _generic_plan(conn, text, params)
            assert not re.search(r"Seq Scan on djobs_(jobs|events) ", generic), f"generic plan:\n{text}\n{generic}"
    finally:
        store.close()


def _rows_read(node: dict[str, Any]) -> int:
    """Rows the plan's scans read from tables and indexes: returned plus removed by their filters."""
    own = 0
    if "Scan" in node["Node Type"]:
        loops = node.get("Actual Loops", 1)
        own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
    return own + sum(_rows_read(child) for child in node.get("Plans", ()))
