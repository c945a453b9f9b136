"""One elected leader runs the fleet-wide duties, on SQLite and PostgreSQL, with real worker processes:
when it is killed (-9), another worker takes over within the stale age — schedules keep firing exactly once
per fire time, and the dead leader's own running jobs are recovered."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from durable_handlers import WorkerProcs, count, entries, open_gate, wait_until

import djobs

pytestmark = pytest.mark.timeout(240)

#: The leader renews its lease every heartbeat and holds it for STALE - heartbeat: a keeper thread stalled longer
#: than that (a loaded CI machine stalled one for over 1.7 s) loses leadership while alive, as designed.
STALE = 4.0


def holder(q: djobs.Queue, name: str) -> str | None:
    held = q.storage.lease_holder(name)
    return held[0] if held else None


def test_leader_killed_another_takes_over_schedules_fire_once_jobs_recovered(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    q.schedule("tick", djobs.every(timedelta(seconds=1)), queue="default")
    # The first worker serves the "slow" queue alone: a job there runs on it, and only the leader that
    # follows it can recover that job.
    first = procs.start("slow=1,default=1", stale=STALE, heartbeat=0.3, interval=0.3, scheduler=True)
    first_id = procs.wait_registered(q, first)
    wait_until(lambda: holder(q, "maintenance") == first_id and holder(q, "scheduler") == first_id, 30,
               "the first worker to lead")  # fmt: skip
    others = [procs.start("default=1", stale=STALE, heartbeat=0.3, interval=0.3, scheduler=True) for _ in range(2)]
    other_ids = {procs.wait_registered(q, p) for p in others}
    job = q.enqueue("rec", {"tag": "held", "gate": "never"}, queue="slow", retries=3)
    wait_until(lambda: count(led, "rec", "held") == 1, 30, "the job to run on the leader")
    wait_until(lambda: len(entries(led, "tick")) >= 3, 30, "three scheduled runs")
    assert holder(q, "maintenance") == first_id, "leadership stays while the leader lives"

    procs.kill9(first)
    killed = time.monotonic()
    new = wait_until(lambda: holder(q, "maintenance") in other_ids and holder(q, "maintenance"), 30, "a new leader")
    took_over = time.monotonic() - killed
    recovered = wait_until(
        lambda: (j := q.get_job(job)) is not None and j.status.value == "pending" and j, 30, "the job's recovery"
    )
    recovered_after = time.monotonic() - killed
    assert recovered.locked_by is None and recovered.attempt == 1
    # Generous bounds (a loaded CI machine): the design bound is the stale age.
    assert took_over < STALE + 5, took_over
    assert recovered_after < STALE + 6, recovered_after
    assert holder(q, "scheduler") in other_ids

    before = len(entries(led, "tick"))
    wait_until(lambda: len(entries(led, "tick")) >= before + 3, 30, "ticks under the new leader")
    for p in others:
        procs.terminate(p)
    fire_times = [j.run_at.timestamp() for j in q.list_jobs(type="tick", limit=10_000) if j.run_at is not None]
    dupes = [t for t, n in Counter(fire_times).items() if n > 1]
    assert not dupes, f"fire times enqueued more than once across the failover: {dupes}"
    assert {e.data.get("schedule") for e in q.events_since(0, 10_000) if e.kind == "schedule_fired"} == {"tick"}
    assert new != first_id


def test_a_stopping_leader_hands_over_at_once(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    a = procs.start("default=1", stale=30.0, heartbeat=0.3, interval=0.3)
    a_id = procs.wait_registered(q, a)
    wait_until(lambda: holder(q, "maintenance") == a_id, 30, "the first worker to lead")
    b = procs.start("default=1", stale=30.0, heartbeat=0.3, interval=0.3)
    b_id = procs.wait_registered(q, b)
    assert procs.terminate(a) == 0
    # With a 30 s stale age an expired lease would take ~30 s; a graceful stop drops it for the next heartbeat.
    wait_until(lambda: holder(q, "maintenance") == b_id, 10, "the other worker to lead after a graceful stop")
    open_gate(led, "ALL")
