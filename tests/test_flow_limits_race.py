"""A running cap under contention for the queue's row lock, on SQLite and PostgreSQL: a claim that waited
for the lock must count the jobs the holder claimed before it committed (under READ COMMITTED a count read
in the statement that waited sees the database as it was before the wait). The selftest's running-cap
invariant found this under kill -9 on PostgreSQL; this reproduces it with two connections."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from dbsql import sql

import djobs
from djobs.jobs import NewJob, new_id
from djobs.outcomes import ClaimRequest, Outcome, OutcomeKind

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("per_key", [False, True], ids=["running", "key_running"])
@pytest.mark.parametrize("completing", [False, True], ids=["claim only", "completion and claim"])
def test_a_claim_that_waited_for_the_lock_counts_what_the_holder_claimed(
    db_url: str, completing: bool, per_key: bool
) -> None:
    """`completing`: the waiting round also completes a job (on PostgreSQL that round is one statement, which
    locks the queue's row itself and must notice that the holder claimed since it began)."""
    first, second = djobs.connect(db_url), djobs.connect(db_url)
    try:
        if per_key:
            djobs.Queue(first).set_limits("capped", key_running=2)
            second._limit_kinds["capped"] = ("keys", time.monotonic())  # as after a round there: the per-key statement
        else:
            djobs.Queue(first).set_limits("capped", running=2)
        first.insert_jobs([NewJob(new_id(), "t", "capped", "null", 0, 0, key="a" if per_key else None) for _ in range(6)])
        first.insert_jobs([NewJob(new_id(), "t", "other", "null", 0, 0)])
        outcomes = []
        if completing:
            (running,) = second.cycle("w2", [], [ClaimRequest("other", ("t",), 1)]).claims
            outcomes = [Outcome(OutcomeKind.COMPLETE, running.job.id, running.job.attempt, result_json="null")]
        req = ClaimRequest("capped", ("t",), 4, limited=True)
        holding, got_second = threading.Event(), []

        def hold() -> None:
            with first.tx():
                rows, _ = first._claim_limited("w1", req, 0)
                assert len(rows) == 2
                holding.set()
                time.sleep(1.0)  # the second claim starts and waits for the queue's row meanwhile

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(30)
        time.sleep(0.2)
        round_ = second.cycle("w2", outcomes, [req])
        got_second = round_.claims
        holder.join(30)
        assert round_.owned == [True] * len(outcomes), "the completion was written"
        running = int(sql(first, "SELECT COUNT(*) FROM djobs_jobs WHERE queue = 'capped' AND status = 'running'").fetchone()[0])
        assert (running, len(got_second)) == (2, 0), "the cap of 2 held: the second claim took nothing"
    finally:
        first.close()
        second.close()


def test_rounds_claiming_limited_queues_in_opposite_orders_neither_deadlock_nor_exceed_caps(db_url: str) -> None:
    """Two workers each claim two limited queues per round, in opposite orders, completing what they won the
    round before. Each round locks both queues' rows; locked in any other order than one shared by every
    worker, two rounds can each hold one row and wait for the other (PostgreSQL then aborts one of them)."""
    a, b = djobs.connect(db_url), djobs.connect(db_url)
    try:
        queue = djobs.Queue(a)
        for name in ("qa", "qb"):
            queue.set_limits(name, running=3)
            a.insert_jobs([NewJob(new_id(), "t", name, "null", 0, 0) for _ in range(300)])
        reqs = [ClaimRequest("qa", ("t",), 2, limited=True), ClaimRequest("qb", ("t",), 2, limited=True)]
        errors: list[BaseException] = []
        peaks: list[int] = []

        def drain(store: Any, worker: str, order: list[ClaimRequest]) -> None:
            held: list[Any] = []
            try:
                for turn in range(400):
                    outs = [Outcome(OutcomeKind.COMPLETE, c.job.id, c.job.attempt, result_json="null") for c in held]
                    held = store.cycle(worker, outs, order, turn=turn).claims
                    if not held and turn > 20:
                        break
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=drain, args=(a, "w1", reqs)), threading.Thread(target=drain, args=(b, "w2", reqs[::-1]))]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peaks.append(int(sql(queue.storage, "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM djobs_jobs WHERE "
                                 "status = 'running' GROUP BY queue) c").fetchone()[0] or 0))  # fmt: skip
            time.sleep(0.01)
        for t in threads:
            t.join(60)
        assert not errors, errors[0]
        assert max(peaks, default=0) <= 3, f"a cap of 3 was exceeded: {max(peaks)} running"
        done = int(sql(queue.storage, "SELECT COUNT(*) FROM djobs_jobs WHERE status = 'completed'").fetchone()[0])
        assert done == 600, f"only {done} of 600 jobs completed"
    finally:
        a.close()
        b.close()
