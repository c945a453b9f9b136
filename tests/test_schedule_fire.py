"""Schedules, on SQLite and PostgreSQL: exactly one enqueue per fire time however many worker
processes run the scheduler, pause/resume, no fire at start-up, one catch-up after downtime, validation."""

from __future__ import annotations

import calendar
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from durable_handlers import (
    WorkerProcs,
    entries,
    in_process_worker,
    sql,
    wait_until,
)

import djobs

pytestmark = pytest.mark.timeout(180)


def jobs_of(q: djobs.Queue, job_type: str) -> list[djobs.Job]:
    return q.list_jobs(type=job_type, limit=10_000)


def db_now(q: djobs.Queue) -> float:
    return q.storage.db_now()


def test_two_scheduler_processes_enqueue_each_fire_time_exactly_once(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    created = db_now(q)
    q.schedule("tick", djobs.every(timedelta(seconds=1)), queue="default")
    ps = [procs.start("default=2", scheduler=True) for _ in range(2)]
    for p in ps:
        procs.wait_registered(q, p)
    wait_until(lambda: len(entries(led, "tick")) >= 6, 60, "six scheduled runs")
    for p in ps:
        procs.terminate(p)
    jobs = jobs_of(q, "tick")
    fire_times = [j.run_at.timestamp() for j in jobs if j.run_at is not None]
    assert len(fire_times) == len(jobs) >= 6
    dupes = [t for t, n in Counter(fire_times).items() if n > 1]
    assert not dupes, f"fire times enqueued more than once: {dupes}"
    assert all(t == int(t) for t in fire_times), fire_times  # multiples of 1 s since the epoch
    assert min(fire_times) > created  # no fire at start-up for a new schedule
    fired = [e for e in q.events_since(0, 10_000) if e.kind == "schedule_fired"]
    assert sorted(e.data["fire_time"] for e in fired) == sorted(fire_times)
    runs = Counter(e[1] for e in entries(led, "tick"))
    assert set(runs.values()) == {1}
    assert {e[3] for e in entries(led, "tick")} <= {str(p.pid) for p in ps}
    (info,) = q.schedules()
    assert info.last_fire is not None and info.last_fire.timestamp() == max(fire_times)
    assert info.next_fire is not None and info.next_fire.timestamp() > max(fire_times)


def test_paused_schedule_does_not_fire_and_fires_again_when_resumed(q: djobs.Queue, led: Path) -> None:
    q.schedule("tock", djobs.every(1), name="probe")
    q.schedule("tick", djobs.every(1), name="held", args={"x": 1}, priority=5)
    assert q.pause_schedule("held", reason="quiet") is True
    info = {s.name: s for s in q.schedules()}
    assert info["held"].paused and info["held"].next_fire is None and info["held"].pause_reason == "quiet"
    assert not info["probe"].paused
    w = in_process_worker(q, scheduler=True)
    w.start()
    try:
        wait_until(lambda: len(entries(led, "tock")) >= 3, 30, "three fires of the probe schedule")
        assert jobs_of(q, "tick") == []
        resumed_at = db_now(q)
        assert q.resume_schedule("held") is True
        wait_until(lambda: len(entries(led, "tick")) >= 2, 30, "the resumed schedule to fire")
    finally:
        w.stop(timeout=5)
    ticks = jobs_of(q, "tick")
    assert all(
        j.run_at is not None and j.run_at.timestamp() > resumed_at for j in ticks
    )  # paused fires skipped
    assert all(j.args == {"x": 1} and j.priority == 5 for j in ticks)
    assert q.pause_schedule("no-such-schedule") is False and q.resume_schedule("no-such-schedule") is False
    kinds = [e.kind for e in q.events_since(0, 10_000)]
    assert "schedule_paused" in kinds and "schedule_resumed" in kinds


def test_a_new_schedule_does_not_fire_at_startup(q: djobs.Queue, led: Path) -> None:
    now = db_now(q)
    # A daily schedule whose fire time is at least 10 minutes away, whatever the time of day.
    hour = int((now % 86400) // 3600)
    far = djobs.daily((hour + 12) % 24, 0)
    q.schedule("tick", far, name="daily")
    q.schedule("tock", djobs.every(1), name="probe")
    info = {s.name: s for s in q.schedules()}
    assert info["daily"].last_fire is None and info["daily"].next_fire is not None
    assert info["daily"].next_fire.timestamp() > now + 600
    assert info["probe"].next_fire is not None and now < info["probe"].next_fire.timestamp() <= now + 1
    w = in_process_worker(q, scheduler=True)
    w.start()
    try:
        wait_until(lambda: len(entries(led, "tock")) >= 2, 30, "two fires of the probe")
    finally:
        w.stop(timeout=5)
    assert jobs_of(q, "tick") == []
    assert all(j.run_at is not None and j.run_at.timestamp() > now for j in jobs_of(q, "tock"))


def test_one_catch_up_fire_after_downtime(q: djobs.Queue, led: Path) -> None:
    q.schedule("tick", djobs.every(1), name="cu")
    t0 = db_now(q)
    sql(
        q, "UPDATE djobs_schedules SET next_fire = ? WHERE name = 'cu'", (float(int(t0) - 30),)
    )  # 30 fires missed
    w = in_process_worker(q, scheduler=True)
    w.start()
    try:
        wait_until(lambda: len(entries(led, "tick")) >= 1, 30, "the catch-up fire")
    finally:
        w.stop(timeout=5)
    fire_times = sorted(j.run_at.timestamp() for j in jobs_of(q, "tick") if j.run_at is not None)
    assert fire_times and fire_times[0] >= int(t0) - 1, f"fired a stale missed time: {fire_times[:5]}"
    assert len(fire_times) == len(set(fire_times))
    assert len(fire_times) < 10, f"one catch-up expected, not one per missed time: {fire_times}"


def test_schedule_listing_update_and_unschedule(q: djobs.Queue, led: Path) -> None:
    assert (
        q.schedule("tick", djobs.every(timedelta(minutes=5)), args={"a": 1}, queue="other", priority=3)
        == "tick"
    )
    q.schedule("tock", djobs.cron("*/5 * * * *"), name="five")
    q.schedule("tock", djobs.weekly(calendar.MONDAY, 9, 30), name="weekly")
    info = {s.name: s for s in q.schedules()}
    assert set(info) == {"tick", "five", "weekly"}
    t = info["tick"]
    assert (t.job, t.args, t.queue, t.priority, t.paused) == ("tick", {"a": 1}, "other", 3, False)
    assert t.next_fire is not None and t.next_fire.timestamp() % 300 == 0
    assert info["five"].next_fire is not None and info["five"].next_fire.minute % 5 == 0
    assert info["weekly"].next_fire is not None and info["weekly"].next_fire.weekday() == calendar.MONDAY
    assert (info["weekly"].next_fire.hour, info["weekly"].next_fire.minute) == (9, 30)
    q.schedule("tick", djobs.every(60), args={"a": 2})  # same name: updated, not duplicated
    info = {s.name: s for s in q.schedules()}
    assert len(info) == 3 and info["tick"].args == {"a": 2} and "60" in info["tick"].spec
    assert q.unschedule("five") is True and q.unschedule("five") is False
    assert {s.name for s in q.schedules()} == {"tick", "weekly"}
    with pytest.raises(djobs.UnknownJobType):
        q.schedule("no-such-job", djobs.every(1))


@pytest.mark.parametrize(
    "expr",
    [
        "* * * *",  # four fields
        "* * * * * *",  # six fields
        "61 * * * *",  # minute out of range
        "* 24 * * *",  # hour out of range
        "* * 32 * *",  # day out of range
        "* * * 13 *",  # month out of range
        "* * * * 8",  # weekday out of range
        "*/0 * * * *",  # zero step
        "a b c d e",  # not numbers
        "0 0 31 2 *",  # February 31st never comes
        "",  # empty
    ],
)
def test_cron_validation_errors(expr: str) -> None:
    with pytest.raises(ValueError) as info:
        djobs.cron(expr)
    assert str(info.value).strip(), "the error must say why"


def test_schedule_constructor_validation() -> None:
    for bad in (
        lambda: djobs.daily(24, 0),
        lambda: djobs.daily(0, 60),
        lambda: djobs.weekly(7, 0, 0),
        lambda: djobs.weekly("someday", 0, 0),
        lambda: djobs.every(0),
        lambda: djobs.every(-5),
        lambda: djobs.cron("0 9 * * *", timezone="Mars/Olympus"),
    ):
        with pytest.raises(ValueError):
            bad()
    assert djobs.cron("*/5 * * * *").next_after(0) == 300
    assert djobs.every(timedelta(minutes=5)).next_after(301) == 600
    assert djobs.weekly("mon", 9).spec == djobs.weekly(calendar.MONDAY, 9).spec
    assert djobs.cron("0 9 * * *", timezone="Europe/Paris").next_after(0) != djobs.cron(
        "0 9 * * *"
    ).next_after(0)
