"""Job and queue pause/resume, on SQLite and PostgreSQL, across real worker processes.

- Queue paused in one process stops claims in a worker process; resume restarts them; running jobs finish.
- Aggressive job pause of a job running in another process: paused within 5 s, handler cancelled, attempt
  refunded, checkpoints kept; resume -> completes without re-running completed steps.
- Graceful job pause: a running job finishes; if it needs a retry it waits paused.
- A paused waiting parent stays paused when its fan-out completes; resume continues it.
- The standalone `djobs.pause_job(store, ...)` family, reasons and events.

Negative facts ("still not claimed") are shown without fixed sleeps: a probe job enqueued after the
paused one, on a queue the same worker serves, completes first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durable_handlers import (
    WorkerProcs,
    count,
    entries,
    in_process_worker,
    open_gate,
    sql,
    wait_status,
    wait_until,
)

import djobs

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def worker(q: djobs.Queue, led: Path) -> Iterator[djobs.Worker]:
    w = in_process_worker(q, queues={"default": 4, "other": 2})
    w.start()
    yield w
    open_gate(led, "ALL")
    w.stop(timeout=5)


def probe(q: djobs.Queue, tag: str, queue: str = "default") -> None:
    """Enqueue a job behind everything else and wait for it: the worker has polled since."""
    wait_status(q, q.enqueue("rec", {"tag": tag}, queue=queue), "completed")


def rec(tag: str, **kw: Any) -> dict[str, Any]:
    return {"type": "rec", "args": {"tag": tag, **kw}}


# -- queues --------------------------------------------------------------------------------------------------
def test_queue_pause_in_one_process_stops_claims_in_a_worker_process(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    proc = procs.start("default=2,other=2")
    procs.wait_registered(q, proc)
    running = q.enqueue("rec", {"tag": "inflight", "gate": "inflight"})
    wait_until(lambda: count(led, "rec", "inflight") == 1, 30, "a job running on the worker")
    q.pause_queue("default", reason="maintenance")
    assert q.is_queue_paused("default") and not q.is_queue_paused("other")
    assert q.paused_queues() == ["default"]
    stats = {s.name: s for s in q.queue_stats()}
    assert stats["default"].paused and stats["default"].pause_reason == "maintenance"
    assert stats["default"].paused_at is not None
    held = [q.enqueue("rec", {"tag": f"held{i}"}) for i in range(3)]
    probe(q, "p1", queue="other")
    probe(q, "p2", queue="other")
    assert [j.status.value for j in map(q.get_job, held)] == ["pending"] * 3  # type: ignore[union-attr]
    # A job already running when the queue paused finishes.
    open_gate(led, "inflight")
    wait_status(q, running, "completed")
    probe(q, "p3", queue="other")
    assert [j.status.value for j in map(q.get_job, held)] == ["pending"] * 3  # type: ignore[union-attr]
    q.resume_queue("default")
    assert not q.is_queue_paused("default") and q.paused_queues() == []
    for jid in held:
        wait_status(q, jid, "completed")
    assert all(count(led, "rec", f"held{i}") == 1 for i in range(3))


# -- jobs: aggressive ----------------------------------------------------------------------------------------
def test_aggressive_pause_of_a_job_running_in_another_process(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    proc = procs.start("default=2")
    jid = q.enqueue("workflow", {"wf": "ag", "steps": 3, "hang_at": 1, "gate": "ag"})
    wait_until(lambda: count(led, "hang-start", "ag") == 1, 60, "the workflow to reach its hanging step")
    assert q.pause_job(jid, mode=djobs.PauseMode.AGGRESSIVE, reason="ops") is True
    job = wait_status(q, jid, "paused", timeout=5)
    assert job.attempt == 0  # refunded
    assert job.pause_reason == "ops" and job.paused_at is not None
    assert q.is_job_paused(jid) and [j.id for j in q.paused_jobs(queue="default")] == [jid]
    # The handler in the other process is cancelled cooperatively.
    wait_until(
        lambda: count(led, "cancelled", "ag") == 1, 5, "the handler in the worker process to be cancelled"
    )
    assert entries(led, "cancelled")[0][3] == str(proc.pid)
    assert [c.call_index for c in q.checkpoints(jid)] == [0]  # kept
    probe(q, "behind")
    assert q.get_job(jid).status.value == "paused"  # type: ignore[union-attr]
    open_gate(led, "ag")
    assert q.resume_job(jid) is True
    job = wait_status(q, jid, "completed")
    assert job.attempt == 1
    assert count(led, "step", "ag", "0") == 1  # the completed step was not re-run
    assert count(led, "hang-start", "ag") == 2 and count(led, "hang-done", "ag") == 1
    assert count(led, "step", "ag", "2") == 1
    assert not q.is_job_paused(jid) and q.paused_jobs() == []


def test_aggressive_pause_cancels_an_async_handler_in_another_process(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    procs.start("default=2")
    jid = q.enqueue("async-hang", {"tag": "as", "gate": "as"})
    wait_until(lambda: count(led, "async-start", "as") == 1, 60, "the async handler to start")
    q.pause_job(jid, mode=djobs.PauseMode.AGGRESSIVE)
    wait_status(q, jid, "paused", timeout=5)
    wait_until(lambda: count(led, "cancelled", "as") == 1, 5, "the async handler to be cancelled")
    open_gate(led, "as")
    q.resume_job(jid)
    assert wait_status(q, jid, "completed").result == "as"


# -- jobs: graceful ------------------------------------------------------------------------------------------
def test_graceful_pause_of_a_pending_job_holds_it_until_resumed(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    q.pause_queue("other")
    jid = q.enqueue("rec", {"tag": "pp"}, queue="other")
    assert q.pause_job(jid) is True
    assert q.get_job(jid).status.value == "paused"  # type: ignore[union-attr]
    q.resume_queue("other")
    probe(q, "pp-probe", queue="other")
    assert q.get_job(jid).status.value == "paused"  # type: ignore[union-attr]
    assert count(led, "rec", "pp") == 0
    assert q.resume_job(jid) is True
    wait_status(q, jid, "completed")
    assert q.resume_job(jid) is False  # nothing to resume any more


def test_graceful_pause_of_a_running_job_lets_it_finish(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    jid = q.enqueue("rec", {"tag": "gf", "gate": "gf"})
    wait_until(lambda: count(led, "rec", "gf") == 1, 30, "the job to run")
    assert q.pause_job(jid, mode=djobs.PauseMode.GRACEFUL) is True
    assert q.is_job_paused(jid)
    assert q.get_job(jid).status.value == "running"  # type: ignore[union-attr]
    open_gate(led, "gf")
    job = wait_status(q, jid, "completed")
    assert job.attempt == 1 and count(led, "cancelled", "gf") == 0
    assert not q.is_job_paused(jid)


def test_graceful_pause_of_a_running_job_that_needs_a_retry_waits_paused(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    jid = q.enqueue("rec", {"tag": "gr", "gate": "gr", "fail": "once"})
    wait_until(lambda: count(led, "rec", "gr") == 1, 30, "the job to run")
    q.pause_job(jid)
    open_gate(led, "gr")
    job = wait_status(q, jid, "paused")
    assert job.attempt == 1 and "fails once" in (job.last_error or "")
    probe(q, "gr-probe")
    assert q.get_job(jid).status.value == "paused"  # type: ignore[union-attr]
    assert count(led, "rec", "gr") == 1
    q.resume_job(jid)
    job = wait_status(q, jid, "completed")
    assert job.attempt == 2 and count(led, "rec-done", "gr") == 1


def test_paused_waiting_parent_stays_paused_when_its_fanout_completes(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    pid = q.enqueue("fan", {"tag": "pw", "subs": [rec("pw0", gate="pw"), rec("pw1", gate="pw")]})
    wait_status(q, pid, "waiting")
    assert q.pause_job(pid) is True
    assert q.get_job(pid).status.value == "paused"  # type: ignore[union-attr]
    open_gate(led, "pw")
    for kid in q.sub_jobs(pid):
        wait_status(q, kid.id, "completed")
    wait_until(
        lambda: sql(q, "SELECT decided FROM djobs_fanouts WHERE parent_id = ?", (pid,))[0][0],
        15,
        "the fan-out to be decided",
    )
    probe(q, "pw-probe")
    assert q.get_job(pid).status.value == "paused"  # type: ignore[union-attr]
    assert count(led, "fan-run", "pw") == 1
    q.resume_job(pid)
    job = wait_status(q, pid, "completed")
    assert job.result["values"] == ["pw0", "pw1"]
    assert count(led, "fan-run", "pw") == 2


def test_paused_waiting_parent_resumed_before_the_fanout_completes_waits_again(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    pid = q.enqueue("fan", {"tag": "pr", "subs": [rec("pr0", gate="pr")]})
    wait_status(q, pid, "waiting")
    q.pause_job(pid)
    q.resume_job(pid)
    assert q.get_job(pid).status.value == "waiting"  # type: ignore[union-attr]  # its prior status
    open_gate(led, "pr")
    assert wait_status(q, pid, "completed").result["values"] == ["pr0"]


def test_graceful_pause_of_a_running_parent_parks_its_fanout_paused(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    """Paused (gracefully) while running, a parent that then fans out is parked `paused` instead of
    `waiting`; its sub-jobs run, and it continues only once resumed."""
    pid = q.enqueue("fan", {"tag": "pf", "subs": [rec("pf0"), rec("pf1")], "gate_before": "pf"})
    wait_until(lambda: count(led, "fan-run", "pf") == 1, 30, "the parent to run")
    q.pause_job(pid)
    open_gate(led, "pf")
    job = wait_status(q, pid, "paused")
    assert job.attempt == 0  # refunded at suspension, as for waiting
    for kid in wait_until(lambda: q.sub_jobs(pid), 10, "sub-jobs written"):
        wait_status(q, kid.id, "completed")
    probe(q, "pf-probe")
    assert q.get_job(pid).status.value == "paused"  # type: ignore[union-attr]
    q.resume_job(pid)
    assert wait_status(q, pid, "completed").result["values"] == ["pf0", "pf1"]


# -- standalone twins, reasons, events -------------------------------------------------------------------------
def test_standalone_pause_family(q: djobs.Queue, led: Path) -> None:
    store = q.storage
    a = q.enqueue("rec", {"tag": "s1"}, queue="emails")
    b = q.enqueue("rec", {"tag": "s2"})
    assert djobs.is_job_paused(store, a) is False
    assert djobs.pause_job(store, a) is True
    assert djobs.pause_job(store, b, mode=djobs.PauseMode.GRACEFUL, reason="why") is True
    assert djobs.is_job_paused(store, a) is True
    assert [j.id for j in djobs.paused_jobs(store, queue="emails")] == [a]
    assert sorted(j.id for j in djobs.paused_jobs(store)) == sorted([a, b])
    assert q.get_job(b).pause_reason == "why"  # type: ignore[union-attr]
    assert djobs.resume_job(store, a) is True
    assert djobs.is_job_paused(store, a) is False and q.get_job(a).status.value == "pending"  # type: ignore[union-attr]
    with pytest.raises(djobs.JobNotFound):
        djobs.pause_job(store, "no-such-job")
    assert djobs.is_queue_paused(store, "emails") is False
    djobs.pause_queue(store, "emails")
    djobs.pause_queue(store, "bulk", reason="slow")
    assert djobs.is_queue_paused(store, "emails") is True
    assert djobs.paused_queues(store) == ["bulk", "emails"]
    djobs.resume_queue(store, "emails")
    assert djobs.paused_queues(store) == ["bulk"] and q.paused_queues() == ["bulk"]
    kinds = [e.kind for e in q.events_since(0, 1000)]
    for kind in ("job_paused", "job_resumed", "queue_paused", "queue_resumed"):
        assert kind in kinds, (kind, kinds)


def test_pause_events_in_process(q: djobs.Queue, led: Path) -> None:
    sub = q.events()
    try:
        jid = q.enqueue("rec", {"tag": "ev"})
        q.pause_job(jid, reason="r")
        q.resume_job(jid)
        q.pause_queue("default")
        q.resume_queue("default")
        got = []
        while (ev := sub.get(timeout=0.3)) is not None:
            got.append(ev)
    finally:
        sub.close()
    assert [type(e).__name__ for e in got] == ["JobPaused", "JobResumed", "QueuePaused", "QueueResumed"]
    assert got[0].job_id == jid and got[0].job.status == djobs.JobStatus.PAUSED
    assert got[2].queue == "default"
    assert all(e.timestamp is not None for e in got)
