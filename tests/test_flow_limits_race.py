"""A running cap under contention for the queue's row lock, on SQLite and PostgreSQL: a claim that waited
for the lock must count the jobs the holder claimed before it committed (under READ COMMITTED a count read
in the statement that waited sees the database as it was before the wait). The selftest's running-cap
invariant found this under kill -9 on PostgreSQL; this reproduces it with two connections."""

from __future__ import annotations

import threading
import time

import pytest
from dbsql import sql

import djobs
from djobs.jobs import NewJob, new_id
from djobs.outcomes import ClaimRequest, Outcome, OutcomeKind

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("completing", [False, True], ids=["claim only", "completion and claim"])
def test_a_claim_that_waited_for_the_lock_counts_what_the_holder_claimed(db_url: str, completing: bool) -> None:
    """`completing`: the waiting round also completes a job (on PostgreSQL its completion statement is the
    one that takes the queue's lock)."""
    first, second = djobs.connect(db_url), djobs.connect(db_url)
    try:
        djobs.Queue(first).set_limits("capped", running=2)
        first.insert_jobs([NewJob(new_id(), "t", "capped", "null", 0, 0) for _ in range(6)])
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
