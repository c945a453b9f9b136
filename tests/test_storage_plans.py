"""The hot statements read the partial indexes written for them.

A partial index serves a statement only when the planner can prove the statement's WHERE implies the index's
predicate, which SQLite does from the same term (or one of its comparisons) and nothing cleverer: a claim
saying its statuses as `status IN (…)` against SQLite's ORed predicate would sort the whole queue instead of
reading the index in order. These tests run the operations for real, record the statements they send, and
ask each backend's planner how it would run them: each operation must read the index made for it, and no
statement may scan the jobs table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import djobs
from djobs.jobs import NewJob, new_id
from djobs.outcomes import ClaimRequest, Outcome, OutcomeKind
from djobs.storage import PeeweeStorage
from djobs.storage.schema import STATUS_INDEXES


@pytest.fixture
def recorded(store: PeeweeStorage, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the storage sends (the real method runs them; this only keeps a copy)."""
    sent: list[tuple[str, Any]] = []
    real = store.db.execute_sql

    def keep(sql: str, params: Any = None, *args: Any, **kw: Any) -> Any:
        sent.append((sql, params))
        return real(sql, params, *args, **kw)

    monkeypatch.setattr(store.db, "execute_sql", keep)
    yield sent


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
    """The plans of the statements `op` sends that read or change job rows, one after another."""
    start = len(sent)
    op()
    statements = [(sql, params) for sql, params in sent[start:] if "djobs_jobs" in sql]
    assert statements
    return "\n\n".join(f"{sql}\n{_plan(store, sql, params)}" for sql, params in statements)


def _scans_the_table(plans: str, is_pg: bool) -> bool:
    """Whether a plan reads every job row: a sequential scan on PostgreSQL, a SCAN of the table itself on
    SQLite (a SCAN of an index names it)."""
    if is_pg:
        return "Seq Scan on djobs_jobs" in plans
    return any(line.strip() == "SCAN djobs_jobs" for line in plans.splitlines())


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
        assert not _scans_the_table(plans, store.is_pg), plans
    assert store.count_jobs(status="pending") == 30 - 10 + 5 + 9 - 6


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
        assert not _scans_the_table(plans, store.is_pg), plans
    assert store.key_holder("held") == held.id and store.key_holder("free") is None

