"""The top row of the main screen: queue summary, workers panel, schedules panel.

Each panel is a `LiveTable` whose bindings act on the row under its cursor, so the footer shows the
queue, worker or schedule actions when that panel has focus.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.binding import Binding

from djobs.jobs import STATUS_ORDER, JobStatus, PauseMode, QueueStats, ScheduleInfo, WorkerInfo

from ..data import QueueLimits
from ..format import DASH, age, next_fire
from .table import Column, LiveTable, Row

_COUNT_HEADERS = {
    JobStatus.PENDING: "pend",
    JobStatus.RUNNING: "run",
    JobStatus.WAITING: "wait",
    JobStatus.RETRYING: "retry",
    JobStatus.PAUSED: "paus",
    JobStatus.FAILED: "fail",
    JobStatus.COMPLETED: "done",
    JobStatus.CANCELLED: "canc",
}

PAUSED = Text("paused", style="bold dark_orange")


class QueueSummary(LiveTable):
    """Per queue: paused flag, counts by status, jobs completed in the last minute."""

    BORDER_TITLE = "queues"
    COLUMNS = (
        Column("queue", 24, shrink_to=8),
        Column("", 6),  # "paused", or nothing: the column takes no space while no queue is paused
        *(Column(_COUNT_HEADERS[s], number=True) for s in STATUS_ORDER),
        Column("/min", number=True),
        Column("limits (held back)", 44, shrink_to=6),  # empty while no queue has limits
    )
    BINDINGS = [
        Binding("p", "pause", "Pause queue"),
        Binding("u", "resume", "Resume queue"),
    ]

    def update_from(self, stats: list[QueueStats], limits: dict[str, QueueLimits] | None = None) -> None:
        limits = limits or {}
        # A limited queue holding no jobs yet is listed too, with its limits.
        known = {st.name for st in stats}
        empty = [QueueStats(name, False, None, None) for name in limits if name not in known]
        rows: list[Row] = []
        for st in sorted([*stats, *empty], key=lambda s: s.name):
            cells: list[Any] = [st.name, PAUSED if st.paused else ""]
            cells += [_count(st.counts.get(s.value, 0)) for s in STATUS_ORDER]
            cells.append(_count(st.completed_last_minute))
            cells.append(limits_text(limits[st.name]) if st.name in limits else "")
            rows.append((st.name, tuple(cells)))
        self.sync(rows)

    def action_pause(self) -> None:
        name = self.selected_key()
        if name is not None:
            self.djobs_app.pause_queue(name)

    def action_resume(self) -> None:
        name = self.selected_key()
        if name is not None:
            self.djobs_app.resume_queue(name)


class WorkersPanel(LiveTable):
    """Live workers: host and pid, queues with concurrency, running jobs, pause state, heartbeat age."""

    BORDER_TITLE = "workers"
    COLUMNS = (
        Column("worker", 12),
        Column("host:pid", 24, shrink_to=10),
        Column("queues", 30, shrink_to=8),
        Column("run", number=True),
        Column("state", 13),
        Column("beat", 5),
    )
    BINDINGS = [
        Binding("p", "pause", "Pause worker"),
        Binding("P", "pause_aggressive", "Pause worker (aggressive)"),
        Binding("u", "resume", "Resume worker"),
    ]

    def update_from(self, workers: list[WorkerInfo], now: datetime) -> None:
        rows: list[Row] = []
        for w in sorted(workers, key=lambda w: w.id):
            queues = ",".join(f"{name}:{n}" for name, n in sorted(w.queues.items()))
            if w.paused:
                label = "paused (aggr)" if w.pause_mode is PauseMode.AGGRESSIVE else "paused"
                state: Any = Text(label, style="bold dark_orange")
            else:
                state = "active"
            rows.append(
                (
                    w.id,
                    (
                        _short_worker(w.id),
                        f"{w.host}:{w.pid}",
                        queues,
                        str(w.running),
                        state,
                        age(w.last_heartbeat_at, now),
                    ),
                )
            )
        self.sync(rows)

    def action_pause(self) -> None:
        if (wid := self.selected_key()) is not None:
            self.djobs_app.pause_worker(wid, aggressive=False)

    def action_pause_aggressive(self) -> None:
        if (wid := self.selected_key()) is not None:
            self.djobs_app.pause_worker(wid, aggressive=True)

    def action_resume(self) -> None:
        if (wid := self.selected_key()) is not None:
            self.djobs_app.resume_worker(wid)


class SchedulesPanel(LiveTable):
    """Schedules: job, spec, next and last fire, paused."""

    BORDER_TITLE = "schedules"
    COLUMNS = (
        Column("schedule", 32, shrink_to=10),
        Column("spec", 24, shrink_to=8),
        Column("next", 11),
        Column("last", 9),
        Column("", 6),  # "paused", or nothing
    )
    BINDINGS = [
        Binding("p", "pause", "Pause schedule"),
        Binding("u", "resume", "Resume schedule"),
    ]

    def update_from(self, schedules: list[ScheduleInfo], now: datetime) -> None:
        rows: list[Row] = []
        for s in sorted(schedules, key=lambda s: s.name):
            label = s.name if s.name == s.job else f"{s.name} ({s.job})"
            rows.append(
                (
                    s.name,
                    (
                        label,
                        str(s.spec),
                        next_fire(s.next_fire, now),
                        f"{age(s.last_fire, now)} ago" if s.last_fire else DASH,
                        PAUSED if s.paused else "",
                    ),
                )
            )
        self.sync(rows)

    def action_pause(self) -> None:
        if (name := self.selected_key()) is not None:
            self.djobs_app.pause_schedule(name)

    def action_resume(self) -> None:
        if (name := self.selected_key()) is not None:
            self.djobs_app.resume_schedule(name)


def limits_text(ql: QueueLimits) -> Text:
    """"run ≤5 (3 held) · 10/s · key run ≤1 · key 1/s (7 held)": each limit, and how many due jobs it holds
    back when it holds any."""
    lim, held = ql.limits, ql.held_back
    parts: list[tuple[str, str]] = []
    if lim.running is not None:
        parts.append((f"run ≤{lim.running}", "running"))
    if lim.rate is not None:
        parts.append((str(lim.rate), "rate"))
    if lim.key_running is not None:
        parts.append((f"key run ≤{lim.key_running}", "key_running"))
    if lim.key_rate is not None:
        parts.append((f"key {lim.key_rate}", "key_rate"))
    out = Text()
    for i, (label, which) in enumerate(parts):
        out.append(" · " if i else "")
        out.append(label)
        if held.get(which):
            out.append(f" ({held[which]:,} held)", style="bold yellow")
    return out


def _count(n: int) -> Any:
    return Text(str(n), style="dim") if not n else f"{n:,}"


def _short_worker(worker_id: str) -> str:
    return worker_id if len(worker_id) <= 12 else worker_id[:11] + "…"
