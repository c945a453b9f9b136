"""Pilot tests of sending a signal from the dashboard (`s` on the detail screen or the jobs table), against
a job really waiting in `ctx.wait_for_signal`, on both backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import djobs
from djobs.tui import make_app
from djobs.tui.screens.detail import JobDetailScreen
from djobs.tui.screens.dialogs import SignalScreen
from djobs.tui.widgets.table import LiveTable

REFRESH = 0.2
TIMEOUT = 20.0
SIZE = (160, 50)


async def wait_for(pilot: Any, predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {TIMEOUT}s waiting for {what}")
        await pilot.pause(0.05)


def approval(ctx: djobs.Context, args: Any) -> Any:
    return {"approved_by": ctx.wait_for_signal("approved")}


def drain(queue: djobs.Queue) -> None:
    queue.worker(queues={"default": 1}, burst=True, poll_interval=0.05).run()


def test_send_a_signal_from_the_detail_screen(db_url: str, queue: djobs.Queue) -> None:
    queue.register("approval", approval)
    job_id = queue.enqueue("approval", {})
    drain(queue)
    assert queue.get_job(job_id).wait_signal == "approved"  # type: ignore[union-attr]

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            app.open_job(job_id)
            await wait_for(pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen.detail, "detail")
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SignalScreen), "the signal form")
            form = app.screen
            assert form.query_one("#signal-name").value == "approved"  # what the job waits for
            await pilot.press("ctrl+u", *"{oops", "ctrl+s")
            await wait_for(pilot, lambda: "not valid JSON" in str(form.query_one("#signal-error").content), "a JSON error")
            assert isinstance(app.screen, SignalScreen)  # nothing sent, the form stays
            await pilot.press("ctrl+u", *'{"by": "ann"}', "enter")
            await wait_for(pilot, lambda: any("Signal 'approved'" in m and "done" in m for m in app.history), "sent")

    asyncio.run(scenario())
    drain(queue)
    assert queue.result(job_id, timeout=10) == {"approved_by": {"by": "ann"}}


def test_signal_from_the_jobs_table_and_a_refused_one(db_url: str, queue: djobs.Queue) -> None:
    queue.register("approval", approval)
    queue.register("hello", lambda args: None)
    waiting = queue.enqueue("approval", {})
    drain(queue)
    finished = queue.enqueue("hello", {})
    queue.cancel_job(finished)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            jobs = app.query_one("#jobs", LiveTable)
            await wait_for(pilot, lambda: {waiting, finished} <= set(jobs.keys()), "the jobs")
            jobs.focus()
            assert jobs.select_key(waiting)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SignalScreen), "the signal form")
            assert app.screen.query_one("#signal-name").value == "approved"
            await pilot.press("escape")  # cancelled: nothing sent
            await wait_for(pilot, lambda: not isinstance(app.screen, SignalScreen), "the form closed")
            assert jobs.select_key(finished)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SignalScreen), "the signal form")
            assert app.screen.query_one("#signal-name").value == ""
            await pilot.press(*"approved", "enter")
            await wait_for(pilot, lambda: any("Signal 'approved'" in m and "ValueError" in m for m in app.history), "refused")

    asyncio.run(scenario())
    drain(queue)
    assert queue.get_job(waiting).status == "waiting"  # type: ignore[union-attr]
