"""Durable sleeps on SQLite and PostgreSQL, with real worker processes and `kill -9`.

- A waiting job holds no slot: 1,000 of them beside a worker of concurrency 2 that serves other jobs
  meanwhile; then they sleep until one time, and all wake, none before it.
- A sleeper whose worker dies mid-sleep wakes on another worker at its time, not before, without re-running
  the steps before the sleep.
- A finished sleep never sleeps again (a replay after a failure returns at once).
- A paused sleeper does not wake; a cancelled one ends cancelled; invalid durations fail the job.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from core_support import running
from durable_handlers import (
    WorkerProcs,
    count,
    entries,
    sql,
    wait_status,
    wait_until,
)

import djobs

pytestmark = pytest.mark.timeout(180)


def sleep_until_of(q: djobs.Queue, job_id: str) -> float:
    """The wake-up time the sleep step checkpointed (database clock)."""
    cps = [c for c in q.checkpoints(job_id) if c.name == "sleep"]
    assert len(cps) == 1, cps
    return float(cps[0].value["until"])


@pytest.mark.timeout(480)  # generous: on a machine under heavy load 1,000 round trips each way add up
def test_a_thousand_sleepers_hold_no_slot(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    """1,000 jobs wait (for a signal, which leaves no timing to chance) while a worker of concurrency 2
    serves other jobs; then each is sent one wake-up time and sleeps until then (those signalled after it
    do not sleep), none woken before it."""
    n = 1000
    naps = q.enqueue_many([djobs.Sub("nap", {"tag": f"n{i}"}) for i in range(n)])
    procs.start("default=2")
    wait_until(lambda: q.count_jobs(status="waiting") == n, 200, "every job to be waiting")
    others = [q.enqueue("rec", {"tag": f"o{i}"}) for i in range(20)]
    for job_id in others:
        wait_status(q, job_id, "completed", timeout=120)
    assert q.count_jobs(status="waiting") == n and q.count_jobs(status="running") == 0
    until = time.time() + 10
    for job_id in naps:
        q.signal(job_id, "go", until)
    wait_until(lambda: q.count_jobs(status="completed") == n + 20, 200, "every sleeper to finish")
    woke = entries(led, "nap-woke")
    assert len(woke) == n
    assert min(float(e[2]) for e in woke) >= until, "a sleeper woke before its time"
    # Each slept once, each sleep a checkpoint: the wake-up replays it, never sleeps again.
    slept = sql(q, "SELECT COUNT(*) FROM djobs_events WHERE kind = 'job_sleeping'")[0][0]
    assert 0 < slept <= n, slept  # fewer when the signal came after the wake-up time already
    assert sql(q, "SELECT COUNT(*) FROM djobs_signals WHERE consumed_by IS NULL")[0][0] == 0


def test_sleeper_killed_mid_sleep_wakes_on_another_worker_at_its_time(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    job_id = q.enqueue("sleeper", {"tag": "s", "seconds": 4})
    first = procs.start("default=2")
    wait_status(q, job_id, "waiting", timeout=30)
    assert q.get_job(job_id).wait_kind == "sleep"  # type: ignore[union-attr]
    procs.kill9(first)
    until = sleep_until_of(q, job_id)
    second = procs.start("default=2")
    wait_status(q, job_id, "completed", timeout=60)
    (woke,) = entries(led, "woke")
    assert float(woke[2]) >= until, f"woke at {woke[2]}, before {until}"
    assert int(woke[3]) == second.pid
    # The step before the sleep ran once (on the first worker); the one after, once.
    assert count(led, "step", "s", "0") == 1
    assert count(led, "step", "s", "1") == 1


def test_sleeper_whose_worker_dies_running_it_sleeps_once(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    """The worker dies before the sleep is written: another worker replays, sleeps, wakes at its time."""
    job_id = q.enqueue("sleeper", {"tag": "h", "seconds": 1.5, "hang_gate": "g"})
    first = procs.start("default=2", stale=1.0)
    wait_until(lambda: entries(led, "hang-start"), 30, "the step before the sleep to start")
    procs.kill9(first)
    Path(led, "gate-g").touch()
    procs.start("default=2", stale=1.0)
    wait_status(q, job_id, "completed", timeout=60)
    (woke,) = entries(led, "woke")
    assert float(woke[2]) >= sleep_until_of(q, job_id)
    assert count(led, "step", "h", "0") == 1


def test_finished_sleep_never_sleeps_again(q: djobs.Queue, led: Path) -> None:
    job_id = q.enqueue("sleeper", {"tag": "f", "seconds": 0.5, "fail_after": True, "twin": True})
    with running(q):
        job = wait_status(q, job_id, "completed", timeout=30)
    assert job.attempt == 2
    # The retry replayed the sleep (woke twice) but slept once.
    assert len(entries(led, "woke")) == 2
    assert [e.kind for e in q.events_since(0, limit=1000, job_id=job_id)].count("job_sleeping") == 1
    assert count(led, "step", "f", "0") == 1 and count(led, "step", "f", "1") == 1


def test_sleep_until_a_past_time_does_not_wait(q: djobs.Queue, led: Path) -> None:
    job_id = q.enqueue("sleeper", {"tag": "p", "until": time.time() - 60})
    with running(q):
        wait_status(q, job_id, "completed", timeout=30)
    kinds = [e.kind for e in q.events_since(0, limit=1000, job_id=job_id)]
    assert "job_sleeping" not in kinds and kinds.count("job_started") == 1
    assert sleep_until_of(q, job_id) < time.time()


def test_paused_sleeper_does_not_wake_until_resumed(q: djobs.Queue, led: Path) -> None:
    job_id = q.enqueue("sleeper", {"tag": "z", "seconds": 0.5})
    with running(q):
        wait_status(q, job_id, "waiting", timeout=30)
        q.pause_job(job_id)
        time.sleep(1.5)  # past its wake-up time
        assert q.get_job(job_id).status.value == "paused"  # type: ignore[union-attr]
        assert entries(led, "woke") == []
        q.resume_job(job_id)
        wait_status(q, job_id, "completed", timeout=30)
    assert len(entries(led, "woke")) == 1


def test_cancelled_sleeper_ends_cancelled(q: djobs.Queue, led: Path) -> None:
    job_id = q.enqueue("sleeper", {"tag": "c", "seconds": 0.5})
    with running(q):
        wait_status(q, job_id, "waiting", timeout=30)
        q.cancel_job(job_id)
        time.sleep(1.5)
    assert q.get_job(job_id).status.value == "cancelled"  # type: ignore[union-attr]
    assert entries(led, "woke") == []


@pytest.mark.parametrize("kind", ["negative", "infinite", "huge", "not-a-time"])
def test_invalid_sleeps_fail_the_job(q: djobs.Queue, kind: str) -> None:
    job_id = q.enqueue("bad-wait", {"kind": kind})
    with running(q):
        job = wait_status(q, job_id, "failed", timeout=30)
    assert "ValueError" in (job.last_error or "") or "TypeError" in (job.last_error or ""), job.last_error
    assert q.checkpoints(job_id) == []


def test_a_retried_cancelled_sleeper_sleeps_the_rest(q: djobs.Queue, led: Path) -> None:
    job_id = q.enqueue("sleeper", {"tag": "r", "seconds": 2})
    with running(q):
        wait_status(q, job_id, "waiting", timeout=30)
        q.cancel_job(job_id)
        assert q.retry_job(job_id)
        wait_until(lambda: len(stored_kinds(q, job_id, "job_sleeping")) == 2, 30, "the retried job to sleep again")
        assert q.get_job(job_id).status.value == "waiting"  # type: ignore[union-attr]
        wait_status(q, job_id, "completed", timeout=30)
    (woke,) = entries(led, "woke")
    assert float(woke[2]) >= sleep_until_of(q, job_id)
    again = stored_kinds(q, job_id, "job_sleeping")[1]
    assert again.data["until"] == sleep_until_of(q, job_id), "the rest of the same sleep, not a new one"
    assert count(led, "step", "r", "0") == 1


def stored_kinds(q: djobs.Queue, job_id: str, kind: str) -> list[djobs.StoredEvent]:
    return [e for e in q.events_since(0, limit=1000, job_id=job_id) if e.kind == kind]
