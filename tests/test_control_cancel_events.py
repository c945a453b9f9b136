"""Cancel across processes, the database event log read from another process, and handler progress
on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

import pytest
from durable_handlers import (
    WorkerProcs,
    count,
    entries,
    in_process_worker,
    open_gate,
    wait_status,
    wait_until,
)

import djobs

pytestmark = pytest.mark.timeout(180)


# -- cancel ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_cancel_of_a_job_running_in_another_process(
    q: djobs.Queue, led: Path, procs: WorkerProcs, kind: str
) -> None:
    proc = procs.start("default=2")
    if kind == "sync":
        jid = q.enqueue("rec", {"tag": "cx", "gate": "never"})
        started = "rec"
    else:
        jid = q.enqueue("async-hang", {"tag": "cx", "gate": "never"})
        started = "async-start"
    wait_until(lambda: count(led, started, "cx") == 1, 60, "the job to run in the worker process")
    assert q.cancel_job(jid, reason="operator") is True
    job = wait_status(q, jid, "cancelled", timeout=5)
    assert job.completed_at is not None
    wait_until(
        lambda: count(led, "cancelled", "cx") == 1, 5, "the handler in the other process to see ctx.cancelled"
    )
    assert entries(led, "cancelled")[0][3] == str(proc.pid)
    # The worker lets go of it: its slot is free and the job stays cancelled.
    wait_status(q, q.enqueue("rec", {"tag": "after"}), "completed")
    assert q.get_job(jid).status.value == "cancelled"  # type: ignore[union-attr]
    with pytest.raises(djobs.JobCancelledError):
        q.result(jid, timeout=1)
    assert q.cancel_job(jid) is False


def test_cancel_pending_paused_and_waiting_jobs(q: djobs.Queue, led: Path) -> None:
    pending = q.enqueue("rec", {"tag": "p"}, delay=3600)
    paused = q.enqueue("rec", {"tag": "z"}, delay=3600)
    q.pause_job(paused)
    assert q.cancel_job(pending) is True and q.cancel_job(paused) is True
    assert [q.get_job(j).status.value for j in (pending, paused)] == ["cancelled", "cancelled"]  # type: ignore[union-attr]
    with pytest.raises(djobs.JobNotFound):
        q.cancel_job("no-such-job")
    w = in_process_worker(q)
    w.start()
    try:
        parent = q.enqueue(
            "fan", {"tag": "cw", "subs": [{"type": "rec", "args": {"tag": "cw0", "gate": "never"}}]}
        )
        wait_status(q, parent, "waiting")
        # The sub-job's handler must be running for its cancellation to be seen (the parent waits as soon as
        # the sub-job is written, which can be before the worker's next round claims it).
        wait_until(lambda: count(led, "rec", "cw0") == 1, 10, "the sub-job's handler to start")
        assert q.cancel_job(parent) is True
        assert [j.status.value for j in q.sub_jobs(parent)] == ["cancelled"]
        wait_until(lambda: count(led, "cancelled", "cw0") == 1, 10, "the sub-job's handler to be cancelled")
        # A cancelled job can be retried: it runs now.
        assert q.retry_job(pending) is True
        assert wait_status(q, pending, "completed").result == "p"
    finally:
        open_gate(led, "ALL")
        w.stop(timeout=5)


# -- events across processes -----------------------------------------------------------------------------------
def test_events_written_by_a_worker_process_are_read_in_order_by_another(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    n_jobs, n_events = 12, 25
    cursor = q.latest_event_id()
    followed: list[djobs.StoredEvent] = []
    stop = threading.Event()

    def follow() -> None:
        for ev in q.follow_events(cursor=cursor, stop=stop):
            followed.append(ev)

    # The follower uses its own connection, as the CLI's `djobs events --follow` would in its own process.
    t = threading.Thread(target=follow, daemon=True)
    t.start()
    procs.start("default=4")
    ids = q.enqueue_many([djobs.Sub("emitter", {"tag": f"e{i}", "n": n_events}) for i in range(n_jobs)])
    for jid in ids:
        wait_status(q, jid, "completed", timeout=60)

    def complete() -> bool:
        done = {e.job_id for e in list(followed) if e.kind == "job_completed"}
        return set(ids) <= done

    try:
        wait_until(complete, 30, "the follower to see every job complete")
    finally:
        stop.set()
        t.join(timeout=10)
    got = list(followed)
    ids_seen = [e.id for e in got]
    assert len(ids_seen) == len(set(ids_seen)), "an event was delivered twice"
    # None missing: the follower saw exactly what the log holds after the cursor (for these jobs).
    logged = []
    c = cursor
    while batch := q.events_since(c, limit=500):
        logged += batch
        c = batch[-1].id
    mine = set(ids)
    assert {e.id for e in logged if e.job_id in mine} <= set(ids_seen)
    # In order, per job: started, seq 0..n-1, completed.
    per_job: dict[str, list[djobs.StoredEvent]] = defaultdict(list)
    for e in got:
        if e.job_id in mine:
            per_job[e.job_id].append(e)
    for jid in ids:
        evs = sorted(per_job[jid], key=lambda e: e.id)
        kinds = [e.kind for e in evs]
        assert kinds[0] == "job_started" and kinds[-1] == "job_completed", kinds
        seqs = [e.data["i"] for e in evs if e.kind == "custom:seq"]
        assert seqs == list(range(n_events)), (jid, seqs)
        assert [e.kind for e in per_job[jid]].count("custom:seq") == n_events
    assert all(e.timestamp is not None for e in got)
    # Filters.
    one = q.events_since(cursor, limit=1000, job_id=ids[0])
    assert {e.job_id for e in one} == {ids[0]} and len(one) == n_events + 2
    assert all(e.queue == "default" for e in q.events_since(cursor, limit=50, queue="default"))


def test_follow_events_yields_new_events_from_another_process_live(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    """Started from the newest event (cursor=None), the follower yields events as a worker process writes them."""
    procs.start("default=2")
    stop = threading.Event()
    got: list[djobs.StoredEvent] = []
    ready = threading.Event()

    def follow() -> None:
        it = q.follow_events(stop=stop, poll=0.05)
        ready.set()
        for ev in it:
            got.append(ev)

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    ready.wait(10)
    jid = q.enqueue("rec", {"tag": "live", "gate": "live"})
    try:
        wait_until(
            lambda: any(e.kind == "job_started" and e.job_id == jid for e in list(got)),
            30,
            "the follower to see the job start while it still runs",
        )
        assert q.get_job(jid).status.value == "running"  # type: ignore[union-attr]
        open_gate(led, "live")
        wait_until(
            lambda: any(e.kind == "job_completed" and e.job_id == jid for e in list(got)),
            30,
            "the follower to see the job complete",
        )
    finally:
        stop.set()
        t.join(timeout=10)


# -- progress ----------------------------------------------------------------------------------------------------
def test_progress_is_stored_on_the_job_and_emitted(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    procs.start("default=2")
    jid = q.enqueue("progress", {"tag": "pg", "gate": "pg"})

    def progressed() -> dict | None:
        job = q.get_job(jid)
        return job.progress if job is not None else None

    prog = wait_until(progressed, 60, "progress to be stored while the job runs")
    assert prog == {"done": 3, "total": 10, "message": "three of ten"}
    assert q.get_job(jid).status.value == "running"  # type: ignore[union-attr]
    open_gate(led, "pg")
    job = wait_status(q, jid, "completed")
    assert job.progress == {"done": 3, "total": 10, "message": "three of ten"}
    stored = {e.kind: e for e in q.events_since(0, 1000, job_id=jid)}
    assert stored["custom:progress"].data == {"done": 3, "total": 10, "message": "three of ten"}
    assert stored["custom:note"].data == {"tag": "pg"}  # ctx.emit(..., persist=True)


def test_progress_and_custom_events_in_process(q: djobs.Queue, led: Path) -> None:
    sub = q.events()
    w = in_process_worker(q)
    w.start()
    try:
        jid = q.enqueue("progress", {"tag": "ip"})
        wait_status(q, jid, "completed")
    finally:
        w.stop(timeout=5)
    got = []
    while (ev := sub.get(timeout=0.3)) is not None:
        got.append(ev)
    sub.close()
    customs = [(e.kind, e.data) for e in got if isinstance(e, djobs.CustomEvent) and e.job_id == jid]
    assert customs == [
        ("progress", {"done": 3, "total": 10, "message": "three of ten"}),
        ("note", {"tag": "ip"}),
    ]
    assert [
        type(e).__name__
        for e in got
        if getattr(e, "job_id", None) == jid and not isinstance(e, djobs.CustomEvent)
    ] == ["JobStarted", "JobCompleted"]
