"""Pilot tests of what the dashboard shows of waiting jobs, limits and meta, on both backends.

Sleeping and signal-waiting jobs are parked as the library parks them (status `waiting`, `wait_kind`,
`wait_signal`, `run_at` the wake-up time or never) with SQL on the row; a fan-out parent is made by a real
worker running a real fan-out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dbsql import sql

import djobs
from djobs.metafilter import parse_all
from djobs.tui import make_app
from djobs.tui.data import JobFilter
from djobs.tui.screens.detail import JobDetailScreen
from djobs.tui.widgets.table import LiveTable

REFRESH = 0.2
TIMEOUT = 20.0
SIZE = (200, 50)
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
WAIT_FOREVER = 253402300799.0


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


async def wait_for(pilot: Any, predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {TIMEOUT}s waiting for {what}")
        await pilot.pause(0.05)


def lines(widget: Any) -> list[str]:
    """The lines a panel shows, as plain text."""
    return [widget.render_line(y).text for y in range(widget.scrollable_content_region.height)]


def line_of(widget: Any, needle: str) -> str:
    return next((line for line in lines(widget) if needle in line), "")


def park(store: Any, job_id: str, kind: str, run_at: float, signal: str | None = None) -> None:
    sql(
        store,
        "UPDATE djobs_jobs SET status = 'waiting', wait_kind = ?, wait_signal = ?, run_at = ? WHERE id = ?",
        (kind, signal, run_at, job_id),
    )


def fan(ctx: djobs.Context, args: Any) -> Any:
    return ctx.fan_out([djobs.Sub("fan-child", {"n": n}) for n in range(2)])


def test_sleepers_signal_waiters_and_fan_out_parents_say_what_they_wait_for(
    db_url: str, store: Any, queue: djobs.Queue
) -> None:
    queue.register("nap", lambda args: None)
    queue.register("approve", lambda args: None)
    queue.register("fan", fan)
    queue.register("fan-child", lambda args: None, queue="children")
    sleeper = queue.enqueue("nap", {}, key="tenant:7", meta={"tenant": "7", "region": "eu"})
    waiter = queue.enqueue("approve", {})
    timed = queue.enqueue("approve", {})
    parent = queue.enqueue("fan", {})
    queue.worker(queues={"default": 1}, burst=True, poll_interval=0.05).run()  # the parent fans out
    assert queue.get_job(parent).wait_kind == "fanout"  # type: ignore[union-attr]
    wake = NOW + timedelta(hours=2, minutes=5)
    park(store, sleeper, "sleep", wake.timestamp())
    park(store, waiter, "signal", WAIT_FOREVER, "approved")
    park(store, timed, "signal", (NOW + timedelta(minutes=30)).timestamp(), "review")

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH, clock=lambda: NOW)
        async with app.run_test(size=SIZE) as pilot:
            jobs = app.query_one("#jobs", LiveTable)
            await wait_for(pilot, lambda: parent in jobs.keys(), "the jobs")
            await pilot.pause()
            assert "sleeping until 14:05:00" in line_of(jobs, sleeper[-11:])
            assert "waiting for signal 'approved'" in line_of(jobs, waiter[-11:])
            assert "waiting for signal 'review' (times out at 12:30:00)" in line_of(jobs, timed[-11:])
            assert "waiting on sub-jobs" in line_of(jobs, parent[-11:])
            app.open_job(sleeper)
            await wait_for(pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen.loaded, "detail")
            fields = _static_text(app.screen, "#detail-fields")
            assert "waiting · sleeping until 14:05:00" in fields
            assert "tenant:7" in fields and '"region": "eu"' in fields and '"tenant": "7"' in fields

    run(scenario)


def test_limits_and_what_they_hold_back(db_url: str, store: Any, queue: djobs.Queue) -> None:
    queue.register("call-api", lambda args: None, queue="api")
    queue.set_limits("api", running=1, key_rate="5/m")
    queue.set_limits("idle", rate="10/s")  # limited, no jobs yet
    running = queue.enqueue("call-api", {})
    due = [queue.enqueue("call-api", {"n": n}) for n in range(3)]
    sql(store, "UPDATE djobs_jobs SET status = 'running', started_at = {now} WHERE id = ?", (running,))
    assert queue.held_back("api")["running"] == len(due)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            queues = app.query_one("#queues", LiveTable)
            await wait_for(pilot, lambda: {"api", "idle"} <= set(queues.keys()), "both queues")
            await pilot.pause()
            assert "run ≤1 (3 held) · key 5/m" in line_of(queues, " api ")
            assert "10/s" in line_of(queues, " idle ")
            assert "limits (held back)" in lines(queues)[0]

    run(scenario)


def test_filter_by_meta(db_url: str, queue: djobs.Queue) -> None:
    queue.register("bill", lambda args: None)
    t42 = queue.enqueue("bill", {}, meta={"tenant": "42", "plan": "pro"})
    t7 = queue.enqueue("bill", {}, meta={"tenant": "7"})
    counted = queue.enqueue("bill", {}, meta={"tenant": 42, "count": 3})
    plain = queue.enqueue("bill", {})

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            jobs = app.query_one("#jobs", LiveTable)
            await wait_for(pilot, lambda: len(jobs.keys()) == 4, "all jobs")
            await pilot.press("slash", *"meta:tenant=42", "enter")
            await wait_for(pilot, lambda: jobs.keys() == [t42], "the job of tenant '42' (text)")
            assert "meta.tenant=42" in str(jobs.border_title)
            await pilot.press("slash", "ctrl+u", *"meta:tenant:=42", "enter")
            await wait_for(pilot, lambda: jobs.keys() == [counted], "the job of tenant 42 (JSON)")
            await pilot.press("slash", "ctrl+u", *"meta:tenant=42 meta:plan=pro bill", "enter")
            await wait_for(pilot, lambda: jobs.keys() == [t42], "both pairs and a word")
            await pilot.press("slash", "ctrl+u", *"meta:tenant", "enter")
            await wait_for(pilot, lambda: any("KEY=VALUE" in m for m in app.history), "a filter error")
            await pilot.press("ctrl+u", "enter")
            await wait_for(pilot, lambda: set(jobs.keys()) == {t42, t7, counted, plain}, "the filter cleared")

    run(scenario)


def test_meta_filter_words() -> None:
    f = JobFilter.parse("failed meta:tenant=42 m:count:=3")
    assert f.status == "failed" and f.meta_filter() == {"tenant": "42", "count": 3}
    assert f.describe() == "status=failed meta.tenant=42 meta.count=3 (JSON)"
    assert JobFilter.parse("meta:a=b=c").meta_filter() == {"a": "b=c"}
    assert parse_all('x:={"y":[1]} z=w') == {"x": {"y": [1]}, "z": "w"}
    assert parse_all("") == {}
    for bad in ("meta:tenant", "meta:=3", "meta:n:=nope", "meta:tenant="):
        with pytest.raises(ValueError):
            JobFilter.parse(bad)


def _static_text(screen: Any, selector: str) -> str:
    import os

    from rich.console import Console

    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(screen.query_one(selector).content)
    return console.export_text()


def test_failed_jobs_key_lists_dead_letters_and_retries_them(db_url: str, queue: djobs.Queue) -> None:
    def explode(args: Any) -> None:
        raise RuntimeError(f"card {args['n']} declined")

    queue.register("charge", explode, retries=0)
    queue.register("hello", lambda args: None, queue="other")
    failed = [queue.enqueue("charge", {"n": n}) for n in range(2)]
    queue.worker(queues={"default": 1}, burst=True, poll_interval=0.05).run()
    other = queue.enqueue("hello", {})

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            jobs = app.query_one("#jobs", LiveTable)
            await wait_for(pilot, lambda: len(jobs.keys()) == 3, "all jobs")
            await pilot.press("f")
            await wait_for(pilot, lambda: set(jobs.keys()) == set(failed), "the failed jobs only")
            assert "RuntimeError: card 0 declined" in line_of(jobs, failed[0][-11:])
            await pilot.press("a", "t", "y")  # mark all shown, retry them, yes
            await wait_for(pilot, lambda: all(queue.get_job(j).status == "pending" for j in failed), "retried")  # type: ignore[union-attr]
            await pilot.press("f")
            await wait_for(pilot, lambda: set(jobs.keys()) == {*failed, other}, "every job again")

    run(scenario)
