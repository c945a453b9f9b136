"""Snapshot tests of the dashboard's layout: the main screen and the job detail screen.

The data is made deterministic: rows are written through the library, then their ids and times are pinned
with SQL on the SQLite file, and the app's clock is frozen, so every age and time on screen is fixed.
Update the snapshots with `pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import djobs
from djobs.tui import make_app
from djobs.tui.screens.detail import JobDetailScreen
from djobs.tui.screens.dialogs import ConfirmScreen

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T = NOW.timestamp()
SIZE = (120, 40)
#: The sizes the main screen must work at: the classic terminal, a laptop, a wide monitor.
SIZES = [(80, 24), (120, 40), (150, 50)]
#: A big queue: counts this wide must show whole.
BIG_PENDING, BIG_DONE = 150_000, 50_000

# id, type, queue, status, priority, attempt, created (s before NOW), extra columns
JOBS: list[tuple[str, str, str, str, int, int, int, dict[str, Any]]] = [
    ("job-0001", "send-email", "emails", "completed", 0, 1, 300, {"result": json.dumps({"sent": True})}),
    ("job-0002", "resize", "default", "failed", 5, 4, 240, {"last_error": "ValueError: image too large"}),
    ("job-0003", "resize", "default", "running", 5, 1, 180,
     {"progress": json.dumps({"done": 40, "total": 100, "message": "tiles"}), "started_at": T - 30}),
    ("job-0004", "report", "default", "pending", 0, 0, 120, {}),
    ("job-0005", "send-email", "emails", "paused", 0, 0, 60, {"paused_from": "pending", "paused_at": T - 50}),
    ("job-0006", "report", "default", "waiting", 10, 1, 50,
     {"started_at": T - 45, "progress": json.dumps({"done": 1, "total": 3, "message": "sub-jobs"}),
      "wait_kind": "fanout", "job_key": "tenant:7", "meta": json.dumps({"tenant": "7", "plan": "pro"})}),
    ("job-0007", "resize", "default", "completed", 0, 1, 45, {"parent_id": "job-0006", "result": "7"}),
    ("job-0008", "resize", "default", "running", 0, 1, 45, {"parent_id": "job-0006", "started_at": T - 20}),
    ("job-0009", "resize", "default", "pending", 0, 0, 45, {"parent_id": "job-0006"}),
]  # fmt: skip

EVENTS = [
    (290, "job_completed", "job-0001", "emails"),
    (235, "job_failed", "job-0002", "default"),
    (45, "job_started", "job-0006", "default"),
    (40, "checkpoint_saved", "job-0006", "default"),
    (20, "job_started", "job-0008", "default"),
]


def seed(url: str) -> None:
    store = djobs.connect(url)
    queue = djobs.Queue(store)
    queue.register("send-email", lambda args: None, queue="emails")
    queue.register("resize", lambda args: None)
    queue.register("report", lambda args: None)
    ids = [queue.enqueue(job_type, {"n": n}, queue=q) for n, (_, job_type, q, *_rest) in enumerate(JOBS, 1)]
    queue.schedule("report", djobs.every(timedelta(minutes=5)), name="nightly-report")
    queue.schedule("resize", djobs.every(timedelta(hours=1)), name="thumbnails")
    queue.pause_queue("emails")
    # Two jobs of queue default run: its running limit holds back its two due pending jobs.
    queue.set_limits("default", running=2, rate="10/s")
    queue.register("bulk-import", lambda args: None, queue="bulk")
    template = queue.enqueue("bulk-import", {})
    store.close()

    db = sqlite3.connect(url.split(":///", 1)[1])
    with db:
        for old, (job_id, _, _, status, priority, attempt, ago, extra) in zip(ids, JOBS, strict=True):
            columns = {
                "id": job_id,
                "status": status,
                "priority": priority,
                "attempt": attempt,
                "created_at": T - ago,
                "updated_at": T - ago + 5,
                "run_at": T - ago,
                "completed_at": T - ago + 10 if status in ("completed", "failed") else None,
                **extra,
            }
            sets = ", ".join(f"{name} = ?" for name in columns)
            db.execute(f"UPDATE djobs_jobs SET {sets} WHERE id = ?", (*columns.values(), old))
        db.execute(
            "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
            "VALUES ('job-0006', '0', 0, 'fetch-rows', '{\"rows\": 3}', NULL, ?)",
            (T - 40,),
        )
        db.execute("UPDATE djobs_queues SET paused_at = ?", (T - 100,))
        db.execute(
            "UPDATE djobs_schedules SET last_fire = ?, next_fire = ?, created_at = ? WHERE name = 'nightly-report'",
            (T - 120, T + 180, T - 900),
        )
        # No scheduler has run this one for 13 minutes: its next fire is overdue.
        db.execute(
            "UPDATE djobs_schedules SET last_fire = ?, next_fire = ?, created_at = ? WHERE name = 'thumbnails'",
            (T - 3600 - 780, T - 780, T - 7200),
        )
        # The big queue: copies of one real row (whatever columns the schema has), an hour old.
        columns = [row[1] for row in db.execute("PRAGMA table_info(djobs_jobs)")]
        changed = {
            "id": "printf('bulk-%06d', n.i)",
            "status": f"CASE WHEN n.i <= {BIG_PENDING} THEN 'pending' ELSE 'completed' END",
            **{c: str(T - 3600) for c in ("created_at", "updated_at", "run_at")},
        }
        db.execute(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {BIG_PENDING + BIG_DONE}) "
            f"INSERT INTO djobs_jobs ({', '.join(columns)}) "
            f"SELECT {', '.join(changed.get(c, c) for c in columns)} FROM n, djobs_jobs WHERE id = ?",
            (template,),
        )
        db.execute("DELETE FROM djobs_jobs WHERE id = ?", (template,))
        db.execute("DELETE FROM djobs_events")
        for ago, kind, job_id, q in EVENTS:
            db.execute(
                "INSERT INTO djobs_events (ts, kind, job_id, queue, data) VALUES (?, ?, ?, ?, '{}')",
                (T - ago, kind, job_id, q),
            )
    db.close()


@pytest.fixture
def frozen_app(sqlite_url: str) -> Any:
    seed(sqlite_url)
    store = djobs.connect(sqlite_url)
    queue = djobs.Queue(store)
    # A long refresh: the picture is the first poll's, with nothing changing under the camera.
    yield make_app(queue, refresh=60.0, clock=lambda: NOW)
    store.close()


async def _loaded(pilot: Any) -> None:
    """Until the first refresh and the first counts are painted, event log lines included (RichLog renders
    them once sized), with the log scrolled to its newest line: it follows the end when lines are
    written, which on a busy machine can be before it knows its height."""
    app = pilot.app
    log = app.query_one("#events")
    while app.polls == 0 or app.counts_read == 0 or log.virtual_size.height < len(EVENTS):
        await pilot.pause(0.02)
    for _ in range(100):
        log.scroll_end(animate=False, immediate=True)
        await pilot.pause(0.02)
        if log.scroll_y >= log.max_scroll_y:
            break
    await _settled(pilot)


async def _settled(pilot: Any) -> None:
    """Until two screenshots 0.05 s apart agree: some parts repaint a few messages after the data is in
    (the footer recomposes for the focused screen's keys, a scrollbar appears once the layout knows the
    height), and on a loaded machine those messages can come after a single pause."""
    last = None
    for _ in range(100):
        await pilot.pause(0.05)
        shot = pilot.app.export_screenshot()
        if shot == last:
            return
        last = shot


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(frozen_app: Any, snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(frozen_app, terminal_size=size, run_before=_loaded)


def test_detail_screen_of_a_fan_out_parent(frozen_app: Any, snap_compare: Any) -> None:
    async def open_parent(pilot: Any) -> None:
        await _loaded(pilot)
        app = pilot.app
        jobs = app.query_one("#jobs")
        jobs.focus()
        assert jobs.select_key("job-0006")
        await pilot.press("enter")
        while not (isinstance(app.screen, JobDetailScreen) and app.screen.loaded):
            await pilot.pause(0.02)
        while len(app.screen.query_one("#detail-subjobs").root.children) < 3:
            await pilot.pause(0.02)
        # The tree holds its rows before it paints them; on a loaded machine two screenshots 0.05 s apart
        # could agree before the paint (the snapshot then lacked the sub-jobs).
        for _ in range(250):
            if "job-0009" in html.unescape(re.sub(r"<[^>]+>", "", app.export_screenshot())):
                break
            await pilot.pause(0.02)
        await _settled(pilot)

    assert snap_compare(frozen_app, terminal_size=SIZE, run_before=open_parent)


def test_confirm_dialog(frozen_app: Any, snap_compare: Any) -> None:
    async def ask(pilot: Any) -> None:
        await _loaded(pilot)
        jobs = pilot.app.query_one("#jobs")
        jobs.focus()
        assert jobs.select_key("job-0004")
        await pilot.press("c")
        while not isinstance(pilot.app.screen, ConfirmScreen):
            await pilot.pause(0.02)
        await _settled(pilot)

    assert snap_compare(frozen_app, terminal_size=SIZE, run_before=ask)


def test_marked_jobs_and_the_bulk_confirmation(frozen_app: Any, snap_compare: Any) -> None:
    async def mark_and_ask(pilot: Any) -> None:
        await _loaded(pilot)
        jobs = pilot.app.query_one("#jobs")
        jobs.focus()
        for job_id in ("job-0002", "job-0004", "job-0005"):
            assert jobs.select_key(job_id)
            await pilot.press("space")
        await pilot.press("t")
        while not isinstance(pilot.app.screen, ConfirmScreen):
            await pilot.pause(0.02)
        await _settled(pilot)

    assert snap_compare(frozen_app, terminal_size=SIZE, run_before=mark_and_ask)
