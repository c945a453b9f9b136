"""Pilot tests of the dashboard: every action against a real database (SQLite and PostgreSQL), with real
workers in other processes where the behaviour crosses processes.

The app is the one `djobs tui` runs (`djobs.tui.make_app`), driven with `App.run_test()`. Waits poll a
condition with a generous timeout; nothing asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import djobs
from djobs.tui import make_app
from djobs.tui.app import DjobsApp
from djobs.tui.screens.detail import JobDetailScreen
from djobs.tui.screens.dialogs import ConfirmScreen, EnqueueScreen
from djobs.tui.widgets.jobs import JobsTable
from djobs.tui.widgets.table import LiveTable

REFRESH = 0.2
TIMEOUT = 20.0
SIZE = (160, 50)
REPO = Path(__file__).resolve().parent.parent


# ---- helpers ----


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


async def wait_for(pilot: Any, predicate: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


def table(app: DjobsApp, table_id: str) -> LiveTable:
    return app.query_one(f"#{table_id}", LiveTable)


async def select(pilot: Any, app: DjobsApp, table_id: str, key: str) -> None:
    """Focus a panel and put its cursor on `key`, waiting for the row to be shown first."""
    t = table(app, table_id)
    await wait_for(pilot, lambda: key in t.keys(), f"{key} in #{table_id}")
    t.focus()
    assert t.select_key(key)
    await pilot.pause()


def job_status(queue: djobs.Queue, job_id: str) -> str:
    job = queue.get_job(job_id)
    assert job is not None
    return str(job.status.value)


WORKER_PRELUDE = """
import sys, time
import djobs
store = djobs.connect({url!r})
queue = djobs.Queue(store)
"""


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `djobs` workers in other processes: spawn(url, handlers_source, queues={...})."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(url: str, handlers: str, queues: dict[str, int] | None = None) -> subprocess.Popen[bytes]:
        script = (
            WORKER_PRELUDE.format(url=url)
            + textwrap.dedent(handlers)
            + f"\nqueue.worker(queues={queues or {'default': 4}!r}, poll_interval=0.05).run()\n"
        )
        path = tmp_path / f"worker{len(procs)}.py"
        path.write_text(script)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, str(path)], cwd=tmp_path, env=env)
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def live_workers(queue: djobs.Queue) -> list[Any]:
    return [w for w in queue.workers() if w.alive]


# ---- cross-process behaviour ----


def test_job_enqueued_by_another_process_appears(db_url: str, queue: djobs.Queue, tmp_path: Path) -> None:
    script = WORKER_PRELUDE.format(url=db_url) + textwrap.dedent(
        """
        queue.register("hello", lambda args: None)
        print(queue.enqueue("hello", {"n": 1}), flush=True)
        """
    )

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.connected, "first poll")
            out = subprocess.run(
                [sys.executable, "-c", script],
                env={**os.environ, "PYTHONPATH": str(REPO)},
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            job_id = out.stdout.strip()
            await wait_for(pilot, lambda: job_id in table(app, "jobs").keys(), "the other process's job")
            await wait_for(
                pilot, lambda: "default" in table(app, "queues").keys(), "its queue in the summary"
            )

    run(scenario)


def test_pause_queue_stops_worker_and_worker_pause(
    db_url: str, queue: djobs.Queue, spawn_worker: Any
) -> None:
    spawn_worker(db_url, 'queue.register("noop", lambda args: args, queue="work")\n', {"work": 2})
    queue.register("noop", lambda args: args, queue="work")
    first = queue.enqueue("noop", 1)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: job_status(queue, first) == "completed", "the worker to run a job")
            await select(pilot, app, "queues", "work")
            await pilot.press("p")
            await wait_for(pilot, lambda: queue.is_queue_paused("work"), "queue paused from the TUI")
            await wait_for(
                pilot, lambda: any("Pause queue work: done" in m for m in app.history), "notification"
            )
            held = queue.enqueue("noop", 2)
            await asyncio.sleep(1.0)  # the worker polls every 50 ms: twenty chances to claim, if it would
            assert job_status(queue, held) == "pending"
            await pilot.press("u")
            await wait_for(pilot, lambda: not queue.is_queue_paused("work"), "queue resumed from the TUI")
            await wait_for(pilot, lambda: job_status(queue, held) == "completed", "the held job to run")

            # The same live worker, paused and resumed from the workers panel.
            workers = live_workers(queue)
            assert len(workers) == 1
            wid = str(workers[0].id)
            await select(pilot, app, "workers", wid)
            await pilot.press("p")
            await wait_for(pilot, lambda: live_workers(queue)[0].paused, "worker paused from the TUI")
            held = queue.enqueue("noop", 3)
            await asyncio.sleep(1.0)
            assert job_status(queue, held) == "pending"
            await pilot.press("u")
            await wait_for(pilot, lambda: not live_workers(queue)[0].paused, "worker resumed")
            await wait_for(pilot, lambda: job_status(queue, held) == "completed", "the held job to run")
            await pilot.press("P")
            await wait_for(
                pilot,
                lambda: str(getattr(live_workers(queue)[0].pause_mode, "value", "")) == "aggressive",
                "worker paused aggressively",
            )
            await pilot.press("u")
            await wait_for(pilot, lambda: not live_workers(queue)[0].paused, "worker resumed again")

    run(scenario)


CANCELLABLE = """
from pathlib import Path

def slow(ctx, args):
    while not ctx.cancelled:
        time.sleep(0.02)
    Path(args["flag"]).write_text("cancelled")
    ctx.raise_if_cancelled()

queue.register("slow", slow, retries=0)
"""


def test_cancel_running_job_cancels_it_in_the_worker(
    db_url: str, queue: djobs.Queue, spawn_worker: Any, tmp_path: Path
) -> None:
    spawn_worker(db_url, CANCELLABLE)
    queue.register("slow", lambda ctx, args: None, retries=0)
    flag = tmp_path / "flag"
    job_id = queue.enqueue("slow", {"flag": str(flag)})

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: job_status(queue, job_id) == "running", "the job to start")
            await select(pilot, app, "jobs", job_id)
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            await pilot.press("n")  # no: nothing happens
            await pilot.pause(0.3)
            assert job_status(queue, job_id) == "running"
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: job_status(queue, job_id) == "cancelled", "the job cancelled")
            await wait_for(pilot, flag.exists, "the handler in the worker process to see the cancel")
            await wait_for(pilot, lambda: any("Cancel job" in m and "done" in m for m in app.history), "note")

    run(scenario)


def test_aggressive_pause_of_a_running_job_then_resume(
    db_url: str, queue: djobs.Queue, spawn_worker: Any, tmp_path: Path
) -> None:
    spawn_worker(
        db_url,
        """
        from pathlib import Path

        def slow(ctx, args):
            flag = Path(args["flag"])
            if flag.exists():
                return "second run"
            while not ctx.cancelled:
                time.sleep(0.02)
            flag.write_text("paused")
            ctx.raise_if_cancelled()

        queue.register("slow", slow)
        """,
    )
    queue.register("slow", lambda ctx, args: None)
    flag = tmp_path / "flag"
    job_id = queue.enqueue("slow", {"flag": str(flag)})

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: job_status(queue, job_id) == "running", "the job to start")
            await select(pilot, app, "jobs", job_id)
            await pilot.press("P")
            await wait_for(pilot, lambda: job_status(queue, job_id) == "paused", "the running job paused")
            await wait_for(pilot, flag.exists, "the handler cancelled in the worker")
            await pilot.press("u")
            await wait_for(
                pilot, lambda: job_status(queue, job_id) == "completed", "the resumed job to finish"
            )
            assert queue.get_job(job_id).result == "second run"  # type: ignore[union-attr]

    run(scenario)


FAN_OUT = """
def parent(ctx, args):
    results = ctx.fan_out([djobs.Sub("child", i) for i in range(3)])
    return djobs.values(results)

queue.register("parent", parent)
queue.register("child", lambda args: args * 10)
"""


def test_detail_of_a_fan_out_parent_shows_its_sub_jobs(
    db_url: str, queue: djobs.Queue, spawn_worker: Any
) -> None:
    spawn_worker(db_url, FAN_OUT)
    queue.register("parent", lambda ctx, args: None)
    parent = queue.enqueue("parent", None)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: job_status(queue, parent) == "completed", "the fan-out to finish")
            children = {str(j.id) for j in queue.sub_jobs(parent)}
            assert len(children) == 3
            await select(pilot, app, "jobs", parent)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, JobDetailScreen), "the detail screen")
            screen = app.screen
            assert isinstance(screen, JobDetailScreen)
            await wait_for(pilot, lambda: screen.loaded and screen.detail is not None, "the detail loaded")
            tree = screen.query_one("#detail-subjobs")
            await wait_for(pilot, lambda: len(tree.root.children) == 3, "three sub-jobs in the tree")  # type: ignore[attr-defined]
            shown = {node.data for node in tree.root.children}  # type: ignore[attr-defined]
            assert shown == children
            assert all("completed" in str(node.label) for node in tree.root.children)  # type: ignore[attr-defined]
            assert "[0,10,20]" in "".join(_static_text(screen, "#detail-result").split())
            # Enter on a sub-job opens its own detail screen.
            tree.focus()
            await pilot.press("down", "enter")
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, JobDetailScreen) and app.screen.job_id in children,
                "the sub-job's detail",
            )
            await pilot.press("escape", "escape")
            await wait_for(
                pilot, lambda: not isinstance(app.screen, JobDetailScreen), "back to the main screen"
            )

    run(scenario)


def _static_text(screen: Any, selector: str) -> str:
    """What a Static shows, as plain text."""
    from rich.console import Console

    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(screen.query_one(selector).content)
    return console.export_text()


# ---- single-process actions ----


def test_pause_and_resume_a_pending_job(db_url: str, queue: djobs.Queue) -> None:
    queue.register("hello", lambda args: None)
    job_id = queue.enqueue("hello", {})

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, app, "jobs", job_id)
            await pilot.press("p")
            await wait_for(pilot, lambda: queue.is_job_paused(job_id), "the job paused (graceful)")
            await pilot.press("u")
            await wait_for(pilot, lambda: not queue.is_job_paused(job_id), "the job resumed")
            assert job_status(queue, job_id) == "pending"
            await pilot.press("P")
            await wait_for(pilot, lambda: queue.is_job_paused(job_id), "the job paused (aggressive)")
            # The same actions from the detail screen.
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, JobDetailScreen), "the detail screen")
            await pilot.press("u")
            await wait_for(pilot, lambda: not queue.is_job_paused(job_id), "resumed from the detail screen")
            await pilot.press("c", "y")
            await wait_for(pilot, lambda: job_status(queue, job_id) == "cancelled", "cancelled from detail")
            await pilot.press("t")
            await wait_for(pilot, lambda: job_status(queue, job_id) == "pending", "retried from detail")

    run(scenario)


def test_retry_a_cancelled_job(db_url: str, queue: djobs.Queue) -> None:
    queue.register("hello", lambda args: None)
    job_id = queue.enqueue("hello", {})
    queue.cancel_job(job_id)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, app, "jobs", job_id)
            await pilot.press("t")
            await wait_for(pilot, lambda: job_status(queue, job_id) == "pending", "the job requeued")
            await wait_for(pilot, lambda: any("Retry job" in m for m in app.history), "notification")

    run(scenario)


def test_failed_action_is_reported_not_raised(db_url: str, queue: djobs.Queue) -> None:
    queue.register("hello", lambda args: None)
    job_id = queue.enqueue("hello", {})

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, app, "jobs", job_id)
            await pilot.press("t")  # retrying a pending job is refused by the library
            await wait_for(pilot, lambda: any("Retry job" in m for m in app.history), "a notification")
            assert app.is_running

    run(scenario)


def test_pause_and_resume_a_schedule(db_url: str, queue: djobs.Queue) -> None:
    from datetime import timedelta

    queue.register("cleanup", lambda args: None)
    queue.schedule("cleanup", djobs.every(timedelta(hours=1)))

    def paused() -> bool:
        return bool([s for s in queue.schedules() if s.name == "cleanup"][0].paused)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, app, "schedules", "cleanup")
            await pilot.press("p")
            await wait_for(pilot, paused, "the schedule paused")
            await pilot.press("u")
            await wait_for(pilot, lambda: not paused(), "the schedule resumed")

    run(scenario)


def test_enqueue_form_validates_json_then_enqueues(db_url: str, queue: djobs.Queue) -> None:
    queue.register("greet", lambda args: None, queue="mail")

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.connected, "first poll")
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, EnqueueScreen), "the form")
            form = app.screen
            # @djobs.job handlers registered by other tests in this process are offered too: pick ours.
            form.query_one("#enqueue-type").value = "greet"  # type: ignore[attr-defined]
            form.query_one("#enqueue-args").value = '{"name": '  # type: ignore[attr-defined]
            form.query_one("#enqueue-priority").value = "7"  # type: ignore[attr-defined]
            await pilot.press("ctrl+s")
            assert app.screen is form  # invalid JSON keeps the form open
            assert "not valid JSON" in _static_text(form, "#enqueue-error")
            assert queue.list_jobs() == []
            form.query_one("#enqueue-args").value = '{"name": "Ada"}'  # type: ignore[attr-defined]
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: len(queue.list_jobs()) == 1, "the job enqueued")
            job = queue.list_jobs()[0]
            assert (job.type, job.args, job.queue, job.priority) == ("greet", {"name": "Ada"}, "mail", 7)
            await wait_for(pilot, lambda: str(job.id) in table(app, "jobs").keys(), "the job in the table")
            assert any(str(job.id) in m for m in app.history)

    run(scenario)


def test_filter_bar(db_url: str, queue: djobs.Queue) -> None:
    queue.register("a", lambda args: None)
    queue.register("b", lambda args: None, queue="other")
    a = queue.enqueue("a", {})
    b = queue.enqueue("b", {})
    queue.cancel_job(a)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            jobs = table(app, "jobs")
            await wait_for(pilot, lambda: set(jobs.keys()) == {a, b}, "both jobs")
            await pilot.press("slash", *"cancelled", "enter")
            await wait_for(pilot, lambda: jobs.keys() == [a], "only the cancelled job")
            await pilot.press("slash", "ctrl+u", *"oth", "enter")  # part of a queue name
            await wait_for(pilot, lambda: jobs.keys() == [b], "the job of the queue named like it")
            await pilot.press("slash", "ctrl+u", *"queue:other", "enter")
            await wait_for(pilot, lambda: jobs.keys() == [b], "only the other queue")
            await pilot.press("slash", "ctrl+u", *"status:bogus", "enter")
            await wait_for(pilot, lambda: any("unknown status" in m for m in app.history), "a filter error")
            await pilot.press("ctrl+u", "enter")
            await wait_for(pilot, lambda: set(jobs.keys()) == {a, b}, "the filter cleared")

    run(scenario)


def test_filter_words_match_part_of_type_and_queue_names(db_url: str, queue: djobs.Queue) -> None:
    queue.register("send-email", lambda args: None, queue="outbox")
    queue.register("send-sms", lambda args: None, queue="outbox")
    queue.register("resize-image", lambda args: None, queue="media")
    email = queue.enqueue("send-email", {})
    sms = queue.enqueue("send-sms", {})
    image = queue.enqueue("resize-image", {})
    queue.cancel_job(sms)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            jobs = table(app, "jobs")
            await wait_for(pilot, lambda: set(jobs.keys()) == {email, sms, image}, "all jobs")
            await pilot.press("slash", *"SEND", "enter")  # part of two type names, any case
            await wait_for(pilot, lambda: set(jobs.keys()) == {email, sms}, "both send-* jobs")
            await pilot.press("slash", "ctrl+u", *"send sms", "enter")  # every word must match
            await wait_for(pilot, lambda: jobs.keys() == [sms], "the sms job alone")
            await pilot.press("slash", "ctrl+u", *"send cancelled", "enter")  # with a status
            await wait_for(pilot, lambda: jobs.keys() == [sms], "the cancelled send-* job")
            await pilot.press("slash", "ctrl+u", *"medi", "enter")  # part of a queue name
            await wait_for(pilot, lambda: jobs.keys() == [image], "the job in queue media")
            await pilot.press("slash", "ctrl+u", *"nothing-like-it", "enter")
            await wait_for(pilot, lambda: jobs.keys() == [], "no job")
            assert "~nothing-like-it" in str(jobs.border_title)

    run(scenario)


def test_detail_of_a_failed_job_shows_its_error_and_traceback(db_url: str, queue: djobs.Queue) -> None:
    def explode(args: Any) -> None:
        raise ValueError(f"bad input {args['n']}")

    queue.register("explode", explode, retries=0)
    job_id = queue.enqueue("explode", {"n": 7})
    queue.worker(queues={"default": 1}, burst=True, poll_interval=0.05).run()
    assert job_status(queue, job_id) == "failed"

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            app.open_job(job_id)
            await wait_for(
                pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen.loaded, "detail"
            )
            screen = app.screen
            assert screen.query_one("#detail-error").display
            assert "ValueError: bad input 7" in _static_text(screen, "#detail-error-message")
            assert screen.query_one("#detail-traceback").display
            traceback = _static_text(screen, "#detail-traceback")
            assert "Traceback" in traceback and "in explode" in traceback and "ValueError" in traceback

    run(scenario)


def test_detail_of_a_job_that_does_not_exist(db_url: str, queue: djobs.Queue) -> None:
    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            app.open_job("no-such-job")
            await wait_for(
                pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen.loaded, "detail"
            )
            assert "job no-such-job not found" in _static_text(app.screen, "#detail-fields")
            assert app.is_running

    run(scenario)


class SlowCounts(djobs.Queue):
    """A real queue whose per-queue counts wait for a go: the count of a huge table, made deterministic."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.go = threading.Event()

    def queue_stats(self) -> list[djobs.QueueStats]:
        self.go.wait(TIMEOUT)
        return super().queue_stats()


def test_first_frame_does_not_wait_for_the_counts(db_url: str) -> None:
    store = djobs.connect(db_url)
    queue = SlowCounts(store)
    queue.register("hello", lambda args: None)
    job_id = queue.enqueue("hello", {})

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: table(app, "jobs").keys() == [job_id], "the jobs before the counts")
            assert app.counts_read == 0 and table(app, "queues").keys() == []
            assert "counting" in str(app.query_one("#queues").border_title)
            await pilot.pause(3 * REFRESH)  # refreshes go on while the count runs
            assert app.polls >= 2 and app.counts_read == 0
            queue.go.set()
            await wait_for(pilot, lambda: table(app, "queues").keys() == ["default"], "the counts")
            assert "counting" not in str(app.query_one("#queues").border_title)

    try:
        run(scenario)
    finally:
        queue.go.set()
        store.close()


def test_bulk_retry_and_cancel_of_marked_jobs(db_url: str, queue: djobs.Queue) -> None:
    queue.register("hello", lambda args: None)
    ids = [queue.enqueue("hello", {"n": n}) for n in range(5)]
    cancelled, pending = ids[:3], ids[3:]
    for job_id in cancelled:
        queue.cancel_job(job_id)

    def statuses(job_ids: list[str]) -> set[str]:
        return {job_status(queue, j) for j in job_ids}

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            jobs = app.query_one("#jobs", JobsTable)
            await wait_for(pilot, lambda: set(jobs.keys()) == set(ids), "the jobs")
            jobs.focus()
            await pilot.press("a")  # every job shown
            assert jobs.marked == set(ids) and "5 marked" in str(jobs.border_title)
            await pilot.pause(3 * REFRESH)
            assert jobs.marked == set(ids)  # refreshes keep the marks
            await pilot.press("t")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            assert "Retry 5 marked jobs?" in _static_text(app.screen, "#confirm-question")
            await pilot.press("y")
            await wait_for(pilot, lambda: statuses(cancelled) == {"pending"}, "the cancelled jobs retried")
            assert statuses(pending) == {"pending"}
            await wait_for(
                pilot, lambda: any("3 retried, 2 left as they were" in m for m in app.history), "note"
            )
            assert jobs.marked == set()

            # Two marked one by one (space marks and moves down), then cancelled.
            await select(pilot, app, "jobs", pending[0])
            await pilot.press("space")
            await select(pilot, app, "jobs", pending[1])
            await pilot.press("space")
            assert jobs.marked == set(pending)
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            assert "Cancel 2 marked jobs?" in _static_text(app.screen, "#confirm-question")
            await pilot.press("n")  # no: nothing happens, the marks stay
            await pilot.pause(0.3)
            assert statuses(pending) == {"pending"} and jobs.marked == set(pending)
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: statuses(pending) == {"cancelled"}, "the marked jobs cancelled")
            assert statuses(cancelled) == {"pending"}  # the unmarked ones untouched

            # Space on a marked job unmarks it; `a` twice marks and unmarks everything; Escape clears.
            await pilot.press("a", "a")
            assert jobs.marked == set()
            await pilot.press("a", "escape")
            assert jobs.marked == set()

    run(scenario)


def test_a_word_matching_many_names_says_it_lists_some(sqlite_url: str) -> None:
    store = djobs.connect(sqlite_url)
    queue = djobs.Queue(store)
    for n in range(25):
        queue.register(f"task-{n:02}", lambda args: None)
        queue.enqueue(f"task-{n:02}", {})

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            jobs = table(app, "jobs")
            await wait_for(pilot, lambda: jobs.row_count == 25, "the jobs")
            await pilot.press("slash", *"task", "enter")
            await wait_for(
                pilot, lambda: "first 20 of 25 matching names" in str(jobs.border_title), "the note"
            )
            assert jobs.row_count == 20

    try:
        run(scenario)
    finally:
        store.close()


def test_a_row_no_writer_of_ours_made_is_shown_not_fatal(sqlite_url: str) -> None:
    """A job whose progress is not what `ctx.progress` writes (here a JSON list written by hand) is listed
    and opened like any other; the dashboard keeps running."""
    import sqlite3

    store = djobs.connect(sqlite_url)
    queue = djobs.Queue(store)
    queue.register("hello", lambda args: None)
    odd = queue.enqueue("hello", {})
    db = sqlite3.connect(sqlite_url.split(":///", 1)[1])
    with db:
        db.execute("UPDATE djobs_jobs SET progress = '[1, 2, 3]' WHERE id = ?", (odd,))
    db.close()

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: table(app, "jobs").keys() == [odd], "the odd job listed")
            app.open_job(odd)
            await wait_for(
                pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen.loaded, "detail"
            )
            assert not app.screen.query_one("#detail-progress-row").display
            assert app.is_running and not any("could not be shown" in m for m in app.history)

    try:
        run(scenario)
    finally:
        store.close()


def test_delete_finished_jobs_marked_or_under_the_cursor(db_url: str, queue: djobs.Queue) -> None:
    queue.register("hello", lambda args: None)
    done = [queue.enqueue("hello", {"n": n}) for n in range(2)]
    queue.worker(queues={"default": 1}, burst=True, poll_interval=0.05).run()
    cancelled = queue.enqueue("hello", {"n": 2})
    queue.cancel_job(cancelled)
    waiting = queue.enqueue("hello", {"n": 3})
    single = queue.enqueue("hello", {"n": 4})
    queue.cancel_job(single)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            jobs = app.query_one("#jobs", JobsTable)
            await wait_for(pilot, lambda: jobs.row_count == 5, "the jobs")
            # One job, under the cursor: the question names it.
            await select(pilot, app, "jobs", single)
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            assert f"Delete job {single}?" in _static_text(app.screen, "#confirm-question")
            await pilot.press("y")
            await wait_for(pilot, lambda: queue.get_job(single) is None, "the job deleted")
            await wait_for(pilot, lambda: single not in jobs.keys(), "the row gone")
            # Every job shown, marked: the finished ones go, the pending one stays.
            await pilot.press("a", "d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            assert "Delete 4 marked jobs?" in _static_text(app.screen, "#confirm-question")
            await pilot.press("y")
            await wait_for(
                pilot, lambda: all(queue.get_job(j) is None for j in [*done, cancelled]), "deleted"
            )
            assert job_status(queue, waiting) == "pending"
            await wait_for(
                pilot, lambda: any("3 deleted, 1 not finished (kept)" in m for m in app.history), "note"
            )
            await wait_for(pilot, lambda: jobs.keys() == [waiting], "only the pending job left")

    run(scenario)


def test_filter_words_match_types_only_workers_registered(db_url: str, queue: djobs.Queue) -> None:
    """A type this process has no handler for, whose jobs are older than the jobs shown, is still found
    by part of its name: workers registered it in the database."""
    other = djobs.Queue(djobs.connect(db_url))
    other.register("zeta-report", lambda args: None)
    old = other.enqueue("zeta-report", {})
    other.worker(queues={"default": 1}, burst=True, poll_interval=0.05).run()
    other.storage.close()
    queue.register("hello", lambda args: None)
    for n in range(3):
        queue.enqueue("hello", {"n": n})

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH, job_window=2)
        async with app.run_test(size=SIZE) as pilot:
            jobs = table(app, "jobs")
            await wait_for(pilot, lambda: app.counts_read > 0 and jobs.row_count == 2, "the newest jobs")
            assert old not in jobs.keys()
            await pilot.press("slash", *"zeta", "enter")
            await wait_for(pilot, lambda: jobs.keys() == [old], "the job of the type workers registered")

    run(scenario)


# ---- layout ----


def panel_text(widget: Any) -> list[str]:
    """The lines a panel shows, as plain text."""
    return [widget.render_line(y).text for y in range(widget.scrollable_content_region.height)]


def test_every_panel_is_usable_at_80x24(db_url: str, queue: djobs.Queue) -> None:
    queue.register("hello", lambda args: None)
    ids = [queue.enqueue("hello", {"n": n}) for n in range(30)]

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=(80, 24)) as pilot:
            jobs = table(app, "jobs")
            await wait_for(pilot, lambda: jobs.row_count == 30, "the jobs")
            await pilot.pause()
            # The jobs table shows its header and at least five jobs, with their ids, types and statuses.
            lines = panel_text(jobs)
            assert len(lines) >= 6, lines
            assert lines[0].split()[:4] == ["id", "type", "queue", "status"]
            assert set(jobs.keys()) == set(ids)
            assert jobs.keys()[0][-11:] in lines[1] and "hello" in lines[1] and "pending" in lines[1]
            # Every other panel keeps at least a header line and two rows, and a usable width.
            for panel in ("queues", "workers", "schedules", "events"):
                region = app.query_one(f"#{panel}").scrollable_content_region
                assert region.height >= 3 and region.width >= 20, (panel, region)

    run(scenario)


def test_counts_are_never_cut_at_150_columns(sqlite_url: str) -> None:
    """150,000 pending and 50,000 completed in one queue: every digit shows in the queue summary."""
    import sqlite3

    store = djobs.connect(sqlite_url)
    queue = djobs.Queue(store)
    queue.register("bulk-import", lambda args: None, queue="bulk")
    template = queue.enqueue("bulk-import", {})
    db = sqlite3.connect(sqlite_url.split(":///", 1)[1])
    columns = [row[1] for row in db.execute("PRAGMA table_info(djobs_jobs)")]
    changed = {
        "id": "printf('bulk-%06d', n.i)",
        "status": "CASE WHEN n.i <= 150000 THEN 'pending' ELSE 'completed' END",
    }
    with db:
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
            f"INSERT INTO djobs_jobs ({', '.join(columns)}) "
            f"SELECT {', '.join(changed.get(c, c) for c in columns)} FROM n, djobs_jobs WHERE id = ?",
            (template,),
        )
        db.execute("DELETE FROM djobs_jobs WHERE id = ?", (template,))
    db.close()

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=(150, 50)) as pilot:
            queues = table(app, "queues")
            await wait_for(pilot, lambda: "bulk" in queues.keys(), "the bulk queue")
            await pilot.pause()
            row = next(line for line in panel_text(queues) if line.startswith(" bulk"))
            assert row.split()[:2] == ["bulk", "150,000"] and "50,000" in row.split(), row

    try:
        run(scenario)
    finally:
        store.close()


def test_an_overdue_schedule_says_so(db_url: str, queue: djobs.Queue) -> None:
    from datetime import UTC, datetime, timedelta

    queue.register("cleanup", lambda args: None)
    queue.schedule("cleanup", djobs.every(timedelta(minutes=5)))
    queue.schedule("cleanup", djobs.every(timedelta(hours=2)), name="cleanup-later")
    # No scheduler runs: twenty minutes on, the five-minute schedule's first fire time is 15-20 minutes past.
    later = datetime.now(UTC) + timedelta(minutes=20)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH, clock=lambda: later)
        async with app.run_test(size=SIZE) as pilot:
            schedules = table(app, "schedules")
            await wait_for(pilot, lambda: schedules.row_count == 2, "the schedules")
            await pilot.pause()
            lines = panel_text(schedules)
            overdue = next(line for line in lines if line.split()[:1] == ["cleanup"])
            assert re.search(r"overdue (1[5-9]|20)m", overdue), lines  # the first fire is within 5 minutes
            # The two-hour schedule fires on its own boundary: late or not depends on the time of day.
            due = next(s.next_fire for s in queue.schedules() if s.name == "cleanup-later")
            later_line = next(line for line in lines if "cleanup-later" in line)
            assert due is not None
            assert ("overdue" in later_line) == (due < later - timedelta(seconds=5)), (due, lines)
            assert ("in " in later_line) == (due > later), (due, lines)

    run(scenario)


# ---- a database that goes away ----


class TcpProxy:
    """A TCP forwarder to the database that can be cut (every connection dropped, new ones refused) and
    restored on the same port: the network going away, for real, without touching the server."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            try:  # on Linux only shutdown() wakes a thread blocked in accept()
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_postgres_going_away_shows_disconnected_then_reconnects(pg_url: str) -> None:
    if "@127.0.0.1:5432/" not in pg_url:
        pytest.skip("the proxy test expects PostgreSQL on 127.0.0.1:5432")
    proxy = TcpProxy("127.0.0.1", 5432)
    store = djobs.connect(pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
    queue = djobs.Queue(store)
    direct_store = djobs.connect(pg_url)
    direct = djobs.Queue(direct_store)
    direct.register("hello", lambda args: None)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.connected, "first poll")
            proxy.cut()
            await wait_for(pilot, lambda: app.connected is False, "the app to notice")
            assert app.query_one("#status").has_class("-disconnected")
            await pilot.pause(1.0)  # a few failed polls; the app keeps running
            assert app.is_running
            job_id = direct.enqueue("hello", {})
            proxy.restore()
            await wait_for(pilot, lambda: app.connected, "the app to reconnect", timeout=40)
            await wait_for(pilot, lambda: job_id in table(app, "jobs").keys(), "fresh data after reconnect")
            assert not app.query_one("#status").has_class("-disconnected")
            assert any("Reconnected" in m for m in app.history)

    try:
        run(scenario)
    finally:
        proxy.cut()
        store.close()
        direct_store.close()


def test_database_error_at_the_poll_boundary_does_not_crash(sqlite_url: str) -> None:
    """A poll that fails with a driver error (here a table renamed away under the app) shows the
    disconnected state and recovers when the database is back."""
    import sqlite3

    store = djobs.connect(sqlite_url)
    queue = djobs.Queue(store)
    path = sqlite_url.split(":///", 1)[1]

    def rename(a: str, b: str) -> None:
        db = sqlite3.connect(path)
        with db:
            db.execute(f"ALTER TABLE {a} RENAME TO {b}")
        db.close()

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.connected, "first poll")
            rename("djobs_workers", "djobs_workers_away")
            await wait_for(pilot, lambda: app.connected is False, "the failure to show")
            rename("djobs_workers_away", "djobs_workers")
            await wait_for(pilot, lambda: app.connected, "recovery")

    try:
        run(scenario)
    finally:
        store.close()


def test_jobs_table_pages_through_older_jobs(sqlite_url: str) -> None:
    store = djobs.connect(sqlite_url)
    queue = djobs.Queue(store)
    queue.register("a", lambda args: None)
    ids = [queue.enqueue("a", i) for i in range(5)]
    newest_first = [str(j.id) for j in queue.list_jobs(limit=10)]
    assert sorted(newest_first) == sorted(ids)

    async def scenario() -> None:
        app = make_app(queue, refresh=REFRESH, job_window=2)
        async with app.run_test(size=SIZE) as pilot:
            jobs = table(app, "jobs")
            await wait_for(pilot, lambda: jobs.keys() == newest_first[:2], "the newest window")
            await pilot.press("right_square_bracket")
            await wait_for(pilot, lambda: jobs.keys() == newest_first[2:4], "the next older window")
            assert "3–4" in str(jobs.border_title)
            await pilot.press("right_square_bracket")
            await wait_for(pilot, lambda: jobs.keys() == newest_first[4:], "the oldest window")
            await pilot.press("right_square_bracket")  # nothing older: stays
            await pilot.pause(0.5)
            assert jobs.keys() == newest_first[4:]
            await pilot.press("left_square_bracket")
            await wait_for(pilot, lambda: jobs.keys() == newest_first[2:4], "one window newer")
            await pilot.press("left_square_bracket")
            await wait_for(pilot, lambda: jobs.keys() == newest_first[:2], "back to the newest")

    try:
        run(scenario)
    finally:
        store.close()


# ---- pure parts ----


def test_filter_bar_syntax() -> None:
    from djobs.tui.data import JobFilter

    assert JobFilter.parse("") == JobFilter()
    assert JobFilter.parse("failed Mail send") == JobFilter("failed", words=("mail", "send"))
    assert JobFilter.parse("status:RUNNING q:work t:resize") == JobFilter("running", "work", "resize")
    assert JobFilter.parse("queue=other").describe() == "queue=other"
    assert JobFilter.parse("failed mail").describe() == "status=failed ~mail"
    with pytest.raises(ValueError, match="unknown status"):
        JobFilter.parse("status:bogus")
    with pytest.raises(ValueError, match="unknown filter"):
        JobFilter.parse("colour:red")
    with pytest.raises(ValueError, match="needs a value"):
        JobFilter.parse("type:")


def test_filter_words_become_lookups_of_matching_types_and_queues() -> None:
    from djobs.tui.data import JobFilter

    types, queues = ["send-email", "send-sms", "resize"], ["emails", "sms", "media"]
    # One word: every type and every queue containing it, each listed once.
    assert JobFilter.parse("mail").lookups(types, queues) == [(None, "emails"), ("send-email", None)]
    assert JobFilter.parse("SEND").lookups(types, queues) == [("send-email", None), ("send-sms", None)]
    # Two words: each pair meets both, by its type or its queue.
    assert JobFilter.parse("send sms").lookups(types, queues) == [
        ("send-email", "sms"),
        ("send-sms", None),
    ]
    # Exact parts stay exact; words then narrow the other side.
    assert JobFilter.parse("queue:emails send").lookups(types, queues) == [
        ("send-email", "emails"),
        ("send-sms", "emails"),
    ]
    assert JobFilter.parse("nothing-like-it").lookups(types, queues) == []
    assert JobFilter.parse("type:resize").lookups(types, queues) == [("resize", None)]
    assert JobFilter.parse("mail").matches("send-email", "default")
    assert JobFilter.parse("mail").matches("report", "emails")
    assert not JobFilter.parse("mail send").matches("report", "emails")


def test_run_reads_refresh_and_database_from_config() -> None:
    from djobs.config import Config
    from djobs.tui import _config_refresh, _describe_database

    config = Config(database="postgresql://ops:s3cret@db.example/jobs?schema=x", tui={"refresh": 2.5})
    assert _config_refresh(config) == 2.5
    assert _config_refresh(None) == 1.0
    assert _describe_database(config) == "postgresql://ops@db.example/jobs?schema=x"  # no password shown
    assert _describe_database(Config(database="sqlite:///djobs.db")) == "sqlite:///djobs.db"


def test_event_log_summarises_a_burst() -> None:
    from datetime import UTC, datetime

    from djobs.tui.data import EventBatch
    from djobs.tui.widgets.events import LINES_PER_REFRESH, EventLog

    now = datetime(2026, 1, 1, tzinfo=UTC)
    events = [djobs.StoredEvent(i, now, "job_completed", f"j{i}", "default", None, {}) for i in range(1, 101)]

    async def scenario() -> None:
        from textual.app import App, ComposeResult

        class Host(App[None]):
            def compose(self) -> ComposeResult:
                yield EventLog()

        host = Host()
        async with host.run_test(size=(120, 30)) as pilot:
            log = host.query_one(EventLog)
            log.add(EventBatch(events, skipped=900), now)
            await pilot.pause()
            text = "\n".join(strip.text for strip in log.lines)
            assert "992 more events (92 job_completed" in text  # 900 skipped + 92 not written
            assert text.count("job_completed") >= LINES_PER_REFRESH
            assert "j100" in text

    run(scenario)
