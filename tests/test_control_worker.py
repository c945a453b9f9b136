"""Worker control, on SQLite and PostgreSQL: pause race, remote pause by id, aggressive release,
wait_for_pause, worker.cancel_job, and a graceful stop that keeps its jobs while it drains.

"Nothing claimed while paused" is shown without fixed sleeps: the paused worker keeps heartbeating (its
maintenance loop, which also reads the pause flag, is running), so two fresh heartbeats after the enqueue
mean it had every chance to claim.
"""

from __future__ import annotations

import random
import time
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


def worker_info(q: djobs.Queue, worker_id: str) -> djobs.WorkerInfo:
    (info,) = [w for w in q.workers() if w.id == worker_id]
    return info


def two_heartbeats(q: djobs.Queue, worker_id: str) -> None:
    """Wait until the worker has heartbeaten twice more (its maintenance loop is alive and polling)."""
    start = worker_info(q, worker_id).last_heartbeat_at
    assert start is not None
    seen: list[object] = []

    def advanced() -> bool:
        hb = worker_info(q, worker_id).last_heartbeat_at
        if hb is not None and hb > start and hb not in seen:
            seen.append(hb)
        return len(seen) >= 2

    wait_until(advanced, 30, f"two heartbeats of worker {worker_id}")


# -- the pause race --------------------------------------------------------------------------------------------
def test_pause_race_claimed_jobs_are_released_never_run(q: djobs.Queue, led: Path) -> None:
    """Graceful pauses land at random moments while the worker claims: once paused and drained, every job
    either ran to completion or is pending again with its attempt refunded and never started."""
    rng = random.Random(7)
    w = in_process_worker(q, queues={"default": 16}, poll_interval=0.005)
    w.start()
    ids: list[str] = []
    try:
        for cycle in range(15):
            ids += q.enqueue_many([djobs.Sub("rec", {"tag": f"c{cycle}-{i}"}) for i in range(40)])
            time.sleep(rng.uniform(0.0, 0.03))
            w.pause(djobs.PauseMode.GRACEFUL)
            assert w.is_paused and w.pause_mode == djobs.PauseMode.GRACEFUL
            w.wait_for_pause(timeout=30)
            assert w.running_job_count == 0
            started = {e[1] for e in entries(led, "rec")}
            done = {e[1] for e in entries(led, "rec-done")}
            assert started == done  # nothing started after the pause and left half-run
            for job in map(q.get_job, ids):
                assert job is not None
                if job.args["tag"] in started:
                    assert (job.status.value, job.attempt) == ("completed", 1), job
                else:
                    assert (job.status.value, job.attempt, job.locked_by) == ("pending", 0, None), job
            w.resume()
        for jid in ids:
            wait_status(q, jid, "completed")
    finally:
        w.stop(timeout=5)
    runs = [e[1] for e in entries(led, "rec")]
    assert len(runs) == len(ids) == len(set(runs))


def test_pause_race_remote_pause_of_a_worker_process(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    """The same race across processes: pause_worker lands while the worker process claims."""
    proc = procs.start("default=8")
    wid = procs.wait_registered(q, proc)
    ids: list[str] = []
    for cycle in range(4):
        ids += q.enqueue_many([djobs.Sub("rec", {"tag": f"r{cycle}-{i}", "sleep": 0.01}) for i in range(60)])
        time.sleep(0.02 * cycle)
        assert q.pause_worker(wid, reason=f"cycle {cycle}") is True
        assert worker_info(q, wid).paused and worker_info(q, wid).pause_reason == f"cycle {cycle}"
        wait_until(
            lambda ids=ids: all(j.status.value != "running" for j in map(q.get_job, ids)),  # type: ignore[misc,union-attr]
            30,
            "the paused worker's running jobs to finish",
        )
        two_heartbeats(q, wid)
        started = {e[1] for e in entries(led, "rec")}
        for job in map(q.get_job, ids):
            assert job is not None
            if job.args["tag"] in started:
                assert (job.status.value, job.attempt) == ("completed", 1), job
            else:
                assert (job.status.value, job.attempt) == ("pending", 0), job
        assert q.resume_worker(wid) is True
    for jid in ids:
        wait_status(q, jid, "completed", timeout=60)
    runs = [e[1] for e in entries(led, "rec")]
    assert len(runs) == len(ids) == len(set(runs))


# -- remote pause by id ----------------------------------------------------------------------------------------
def test_remote_pause_by_id_reaches_an_in_process_worker(q: djobs.Queue, led: Path, db_url: str) -> None:
    w = in_process_worker(q)
    w.start()
    other = djobs.connect(db_url)  # another connection, as another process would have
    remote = djobs.Queue(other)
    try:
        assert remote.pause_worker(w.id, mode=djobs.PauseMode.GRACEFUL) is True
        wait_until(lambda: w.is_paused, 3, "worker.is_paused after a remote pause")
        assert w.pause_mode == djobs.PauseMode.GRACEFUL
        jid = q.enqueue("rec", {"tag": "rp"})
        two_heartbeats(q, w.id)
        assert q.get_job(jid).status.value == "pending"  # type: ignore[union-attr]
        assert remote.resume_worker(w.id) is True
        wait_until(lambda: not w.is_paused, 3, "worker.is_paused false after a remote resume")
        wait_status(q, jid, "completed")
        assert remote.pause_worker("no-such-worker") is False
    finally:
        w.stop(timeout=5)
        other.close()


def test_remote_pause_of_a_worker_process(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    proc = procs.start("default=2")
    wid = procs.wait_registered(q, proc)
    info = worker_info(q, wid)
    assert info.pid == proc.pid and info.queues == {"default": 2} and info.alive and not info.paused
    assert "rec" in info.handlers
    q.pause_worker(wid)
    assert worker_info(q, wid).paused and worker_info(q, wid).pause_mode == djobs.PauseMode.GRACEFUL
    jid = q.enqueue("rec", {"tag": "rpp"})
    two_heartbeats(q, wid)
    assert q.get_job(jid).status.value == "pending"  # type: ignore[union-attr]
    q.resume_worker(wid)
    wait_status(q, jid, "completed")
    assert not worker_info(q, wid).paused
    kinds = [e.kind for e in q.events_since(0, 1000) if e.worker_id == wid]
    assert "worker_paused" in kinds and "worker_resumed" in kinds


def test_remote_aggressive_pause_releases_running_jobs_with_attempt_refunded(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    proc = procs.start("default=2")
    wid = procs.wait_registered(q, proc)
    jid = q.enqueue("rec", {"tag": "ra", "gate": "ra"})
    wait_until(lambda: count(led, "rec", "ra") == 1, 30, "the job to run")
    q.pause_worker(wid, mode=djobs.PauseMode.AGGRESSIVE)
    job = wait_status(q, jid, "pending", timeout=5)
    assert job.attempt == 0 and job.locked_by is None
    wait_until(
        lambda: count(led, "cancelled", "ra") == 1, 5, "the handler in the worker process to be cancelled"
    )
    two_heartbeats(q, wid)
    assert q.get_job(jid).status.value == "pending"  # type: ignore[union-attr]  # not re-claimed while paused
    open_gate(led, "ra")
    q.resume_worker(wid)
    job = wait_status(q, jid, "completed")
    assert job.attempt == 1
    assert [e[2] for e in entries(led, "rec") if e[1] == "ra"] == ["1", "1"]


def test_local_aggressive_pause_releases_and_cancels(q: djobs.Queue, led: Path) -> None:
    w = in_process_worker(q)
    w.start()
    try:
        jid = q.enqueue("workflow", {"wf": "la", "steps": 2, "hang_at": 1, "gate": "la"})
        wait_until(lambda: count(led, "hang-start", "la") == 1, 30, "the job to hang")
        w.pause(djobs.PauseMode.AGGRESSIVE)
        assert w.pause_mode == djobs.PauseMode.AGGRESSIVE
        w.wait_for_pause(timeout=5)
        job = q.get_job(jid)
        assert job is not None and (job.status.value, job.attempt) == ("pending", 0)
        assert count(led, "cancelled", "la") == 1
        open_gate(led, "la")
        w.resume()
        job = wait_status(q, jid, "completed")
        assert job.attempt == 1 and count(led, "step", "la", "0") == 1
    finally:
        open_gate(led, "ALL")
        w.stop(timeout=5)


# -- wait_for_pause, cancel_job ------------------------------------------------------------------------------------
def test_wait_for_pause(q: djobs.Queue, led: Path) -> None:
    w = in_process_worker(q)
    w.start()
    try:
        with pytest.raises(djobs.NotPaused):
            w.wait_for_pause(timeout=1)
        jid = q.enqueue("rec", {"tag": "wp", "gate": "wp"})
        wait_until(lambda: count(led, "rec", "wp") == 1, 30, "the job to run")
        w.pause()
        assert w.is_paused and w.running_job_count == 1
        with pytest.raises(TimeoutError):
            w.wait_for_pause(timeout=0.3)
        open_gate(led, "wp")
        w.wait_for_pause(timeout=30)
        assert w.running_job_count == 0
        assert q.get_job(jid).status.value == "completed"  # type: ignore[union-attr]
        w.resume()
        assert not w.is_paused and w.pause_mode is None
        with pytest.raises(djobs.NotPaused):
            w.wait_for_pause()
    finally:
        open_gate(led, "ALL")
        w.stop(timeout=5)


def test_worker_cancel_job(q: djobs.Queue, led: Path) -> None:
    w = in_process_worker(q)
    w.start()
    try:
        pending = q.enqueue("rec", {"tag": "later"}, delay=3600)
        jid = q.enqueue("rec", {"tag": "wc", "gate": "never"})
        wait_until(lambda: count(led, "rec", "wc") == 1, 30, "the job to run")
        assert w.cancel_job(pending) is False  # not running here
        assert w.cancel_job("no-such-job") is False
        assert w.cancel_job(jid) is True
        assert q.get_job(jid).status.value == "cancelled"  # type: ignore[union-attr]
        wait_until(lambda: count(led, "cancelled", "wc") == 1, 5, "the handler to see ctx.cancelled")
        wait_until(lambda: w.running_job_count == 0, 5, "the slot to be freed")
        assert q.get_job(jid).status.value == "cancelled"  # type: ignore[union-attr]
        assert count(led, "rec-done", "wc") == 0
    finally:
        open_gate(led, "ALL")
        w.stop(timeout=5)


def test_worker_pause_events(q: djobs.Queue, led: Path) -> None:
    def drain(sub: djobs.Subscription) -> list[djobs.Event]:
        got = []
        while (ev := sub.get(timeout=0.3)) is not None:
            if isinstance(ev, djobs.WorkerPaused | djobs.WorkerResumed):
                got.append(ev)
        return got

    sub = q.events()
    w = in_process_worker(q)
    w.start()
    try:
        w.pause(djobs.PauseMode.AGGRESSIVE, reason="local")
        w.resume()
        local = drain(sub)
        q.pause_worker(w.id)
        wait_until(lambda: w.is_paused, 3, "the remote pause to reach the worker")
        q.resume_worker(w.id)
        wait_until(lambda: not w.is_paused, 3, "the remote resume to reach the worker")
        remote = drain(sub)
    finally:
        sub.close()
        w.stop(timeout=5)
    assert [type(e).__name__ for e in local] == ["WorkerPaused", "WorkerResumed"]
    assert local[0].mode == djobs.PauseMode.AGGRESSIVE  # type: ignore[attr-defined]
    assert {e.worker_id for e in local + remote} == {w.id}  # type: ignore[attr-defined]
    names = [type(e).__name__ for e in remote]
    assert "WorkerPaused" in names and "WorkerResumed" in names
    assert names.index("WorkerPaused") < len(names) - 1 - names[::-1].index("WorkerResumed")
    assert all(e.mode == djobs.PauseMode.GRACEFUL for e in remote if isinstance(e, djobs.WorkerPaused))
    stored = [(e.kind, e.data.get("mode")) for e in q.events_since(0, 1000) if e.worker_id == w.id]
    assert stored[:4] == [
        ("worker_paused", "aggressive"),
        ("worker_resumed", None),
        ("worker_paused", "graceful"),
        ("worker_resumed", None),
    ]


# -- graceful stop -------------------------------------------------------------------------------------------------
def test_graceful_stop_keeps_its_jobs_while_draining(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    """SIGTERM: the worker drains (5 s here, longer than the 2 s stale age); it must keep heartbeating so no
    other worker reclaims the job it is still running. Undrained, the job is released with its attempt
    refunded and another worker runs it."""
    a = procs.start("default=2")
    wid_a = procs.wait_registered(q, a)
    jid = q.enqueue("rec", {"tag": "dr", "gate": "dr"})
    wait_until(lambda: count(led, "rec", "dr") == 1, 30, "the job to run on worker A")
    b = procs.start("default=2")
    wid_b = worker_info(q, procs.wait_registered(q, b)).id
    a.send_signal(15)
    allowed = {("running", wid_a, 1), ("pending", None, 0), ("running", wid_b, 1)}
    while a.poll() is None:
        job = q.get_job(jid)
        assert job is not None
        state = (job.status.value, job.locked_by, job.attempt)
        assert state in allowed, f"job is {state} while worker A ({wid_a}) still drains it"
        time.sleep(0.05)
    open_gate(led, "dr")
    job = wait_status(q, jid, "completed")
    assert job.attempt == 1  # the drain release refunded A's attempt
    runs = entries(led, "rec")
    assert [(e[2], e[3]) for e in runs] == [("1", str(a.pid)), ("1", str(b.pid))]
