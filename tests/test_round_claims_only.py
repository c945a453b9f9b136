"""A round that only claims (the first after a wake-up, an idle poll): what it claims, the event it writes,
when it says the next job is due, and, on PostgreSQL, whom it wakes: event followers hear of new event
rows, never of a poll that found nothing (hundreds of idle workers polling must not keep every dashboard
re-reading the event log)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from djobs.jobs import NewJob, new_id
from djobs.outcomes import ClaimRequest
from djobs.proof.dbutil import is_postgres, split_schema
from djobs.storage import PeeweeStorage

W = "worker-one"


def _job(delay: float = 0.0) -> NewJob:
    return NewJob(new_id(), "t", "default", "{}", 0, 3, delay=delay)


def _round(store: PeeweeStorage) -> Any:
    return store.cycle(W, [], [ClaimRequest("default", ("t",), 10, False)], (), (), True, True)


@pytest.fixture
def follower(store: PeeweeStorage, db_url: str) -> Iterator[Any]:
    """A LISTEN on the events channel, as the TUI and the dashboard follow events; None on SQLite."""
    if not is_postgres(db_url):
        yield None
        return
    import psycopg

    conn = psycopg.connect(split_schema(db_url)[0], autocommit=True)
    conn.execute("LISTEN djobs_event")
    yield conn
    conn.close()


def _heard(conn: Any, schema: str, wait: float) -> int:
    """Events-channel notifications for this test's schema within `wait` seconds (others' are ignored)."""
    return sum(1 for n in conn.notifies(timeout=wait) if n.payload == schema)


def test_a_round_that_claims_nothing_says_when_the_next_job_is_due_and_wakes_no_follower(
    store: PeeweeStorage, follower: Any
) -> None:
    empty = _round(store)
    assert empty.claims == [] and empty.next_due is None
    store.insert_jobs([later := _job(delay=60.0)])
    if follower is not None:
        _heard(follower, store.schema or "public", 0.2)  # whatever the insert itself announced
    waiting = _round(store)
    stored = store.get_job(later.id)
    assert waiting.claims == [] and stored is not None and stored.run_at is not None
    assert waiting.next_due == pytest.approx(stored.run_at.timestamp(), abs=0.01)
    if follower is not None:
        assert _heard(follower, store.schema or "public", 0.5) == 0, "a poll that found nothing woke followers"


def test_a_round_that_claims_writes_the_start_event_and_followers_hear_of_it(
    store: PeeweeStorage, follower: Any
) -> None:
    store.insert_jobs([due := _job()])
    if follower is not None:
        _heard(follower, store.schema or "public", 0.2)
    got = _round(store)
    assert [c.job.id for c in got.claims] == [due.id] and got.claims[0].job.status.value == "running"
    assert got.next_due is None
    started = [e for e in store.events_since(job_id=due.id) if e.kind == "job_started"]
    assert len(started) == 1 and started[0].worker_id == W
    if follower is not None:
        deadline = time.monotonic() + 5
        while not _heard(follower, store.schema or "public", 0.2):
            assert time.monotonic() < deadline, "followers never heard of the start event"
