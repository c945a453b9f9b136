"""The hot statements read the partial indexes written for them.

A partial index serves a statement only when the planner can prove the statement's WHERE implies the index's
predicate, which SQLite does from the same term (or one of its comparisons) and nothing cleverer: a claim
saying its statuses as `status IN (…)` against SQLite's ORed predicate would sort the whole queue instead of
reading the index in order. These tests run the operations for real, record the statements they send, and
ask each backend's planner how it would run them: each operation must read the index made for it, and no
statement may read a growing table (jobs, events, fan-outs) whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dbsql import record_statements

import djobs
from djobs.jobs import NewJob, new_id
from djobs.outcomes import ClaimRequest, Outcome, OutcomeKind
from djobs.storage import PeeweeStorage
from djobs.storage.schema import STATUS_INDEXES


@pytest.fixture
def recorded(store: PeeweeStorage, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the storage sends (the real method runs them; this only keeps a copy)."""
    yield record_statements(store, monkeypatch)


def _plan(store: PeeweeStorage, sql: str, params: Any) -> str:
    conn = store.db.connection()
    if store.is_pg:
        with conn.transaction(force_rollback=True):
            cur = conn.cursor()
            cur.execute("SET LOCAL enable_seqscan = off")  # tiny tables: ask what it can use, not what is cheapest
            cur.execute("EXPLAIN " + sql, params)
            return "\n".join(r[0] for r in cur.fetchall())
    return "\n".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params or ()).fetchall())


def _jobs(n: int, queue: str = "default", keys: int = 0) -> list[NewJob]:
    return [NewJob(new_id(), "t", queue, "{}", 0, 0, key=f"k{i % keys}" if keys else None) for i in range(n)]


def _plans(store: PeeweeStorage, sent: list[tuple[str, Any]], op: Callable[[], Any]) -> str:
    """The plans of the statements `op` sends to djobs's tables, one after another."""
    start = len(sent)
    op()
    statements = [(sql, params) for sql, params in sent[start:] if "djobs_" in sql]
    assert statements
    return "\n\n".join(f"{sql}\n{_plan(store, sql, params)}" for sql, params in statements)


#: Tables that grow with use: reading one whole is what these tests refuse.
GROWING = ("djobs_jobs", "djobs_events", "djobs_fanouts")


def _reads_a_table_whole(plans: str, is_pg: bool) -> bool:
    """A sequential scan of a growing table on PostgreSQL, a SCAN of the table itself on SQLite (a SCAN of
    an index names it)."""
    if is_pg:
        return any(f"Seq Scan on {table}" in plans for table in GROWING)
    return any(line.strip() in {f"SCAN {table}" for table in GROWING} for line in plans.splitlines())


def test_claims_retries_and_listings_read_the_partial_indexes(
    store: PeeweeStorage, recorded: list[tuple[str, Any]]
) -> None:
    store.insert_jobs(_jobs(30))
    store.insert_jobs(_jobs(9, "keyed", keys=3))
    store.set_limits("keyed", None, None, djobs.Rate(1000, 1), 2)
    claimed: list[Any] = []

    def claim() -> None:
        claimed.extend(store.cycle("w1", [], [ClaimRequest("default", ("t",), 10, False)]).claims)

    def finish_and_claim_keyed() -> None:
        outs = [Outcome(OutcomeKind.FAIL, c.job.id, c.job.attempt, error="boom") for c in claimed[:5]]
        outs += [Outcome(OutcomeKind.COMPLETE, c.job.id, c.job.attempt, result_json="1") for c in claimed[5:]]
        assert store.cycle("w1", outs, [ClaimRequest("keyed", ("t",), 10, False, True)]).claims

    expected = [
        (claim, "claim"),
        (finish_and_claim_keyed, "keyed"),
        (lambda: store.dead_letters(), "finished"),
        (lambda: store.queue_stats(), "finished"),  # the last minute's completions
        (lambda: store.requeue_failed(), "finished"),
    ]
    for op, kind in expected:
        plans = _plans(store, recorded, op)
        assert STATUS_INDEXES[kind][1 - store.is_pg] in plans, plans
        assert not _reads_a_table_whole(plans, store.is_pg), plans
    assert store.count_jobs(status="pending") == 30 - 10 + 5 + 9 - 6


def test_counts_read_indexes_only(store: PeeweeStorage, recorded: list[tuple[str, Any]]) -> None:
    """The dashboard and the metrics count jobs by queue and status every few seconds: from the partial
    indexes, never by reading the jobs table, whatever the status asked for."""
    from djobs.jobs import STATUS_VALUES

    store.insert_jobs(_jobs(30) + _jobs(10, "other"))
    ops = [store.queue_stats, store.queue_lag, lambda: store.count_jobs(queue="other")]
    ops += [lambda s=s: store.count_jobs(status=s) for s in STATUS_VALUES]
    ops += [lambda s=s: store.count_jobs(status=s, queue="other") for s in STATUS_VALUES]
    for op in ops:
        plans = _plans(store, recorded, op)
        assert plans and not _reads_a_table_whole(plans, store.is_pg), plans
    assert store.count_jobs(queue="other") == 10 and store.count_jobs(status="pending") == 40


def test_a_duplicate_unique_key_finds_its_holder_through_the_indexes(
    store: PeeweeStorage, recorded: list[tuple[str, Any]]
) -> None:
    """Every refused duplicate looks up the job holding its key: on a big table that must be two index
    reads (the active holders', the idempotency windows'), not a scan."""
    store.insert_jobs(_jobs(20))
    held = NewJob(new_id(), "t", "default", "{}", 0, 0, unique_key="held")  # active: the unique index refuses
    store.insert_jobs([held])

    def duplicate() -> None:
        with pytest.raises(djobs.DuplicateJob) as err:
            store.insert_jobs([NewJob(new_id(), "t", "default", "{}", 0, 0, unique_key="held")])
        assert err.value.existing_id == held.id

    for op in (duplicate, lambda: store.key_holder("held")):
        plans = _plans(store, recorded, op)
        assert STATUS_INDEXES["unique"][1 - store.is_pg] in plans and "djobs_jobs_unique_window" in plans, plans
        assert not _reads_a_table_whole(plans, store.is_pg), plans
    assert store.key_holder("held") == held.id and store.key_holder("free") is None


def test_the_leaders_upkeep_reads_indexes_only(store: PeeweeStorage, recorded: list[tuple[str, Any]]) -> None:
    """What the leader runs every few seconds or minutes on tables that only grow (finished jobs, events,
    fan-outs) must not read them whole, least of all when there is nothing to do."""
    from djobs.jobs import PauseMode, Retention

    store.insert_jobs(_jobs(20))
    claimed = store.cycle("w1", [], [ClaimRequest("default", ("t",), 10, False)]).claims
    store.cycle("w1", [Outcome(OutcomeKind.COMPLETE, c.job.id, c.job.attempt, result_json="1") for c in claimed], [])
    pending = [j.id for j in store.list_jobs(status="pending")]
    assert store.pause_job(pending[0], PauseMode.GRACEFUL, "hold")[0]
    expected = [
        (lambda: store.apply_retention(Retention(completed=3600.0, failed=3600.0, cancelled=3600.0)), "djobs_jobs_finished"),
        (lambda: store.purge(("completed", "cancelled"), 3600.0), "djobs_jobs_finished"),
        (lambda: store.trim_events(3600.0, 1_000_000), "djobs_events_ts"),
        (lambda: store.fanouts_due(), "djobs_fanouts_open"),
        (lambda: store.paused_jobs(), "djobs_jobs_paused"),
    ]
    for op, index in expected:
        plans = _plans(store, recorded, op)
        assert index in plans, plans
        assert not _reads_a_table_whole(plans, store.is_pg), plans
    assert store.count_jobs(status="completed") == 10 and [j.id for j in store.paused_jobs()] == pending[:1]

