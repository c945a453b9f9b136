"""The job detail screen (Enter on a job): fields, args and result, the error and the traceback of the
last failed attempt, progress, checkpoints, the sub-job tree with statuses, recent events and, when the job
is not running, why not. What it shows comes from the library's `queue.job_detail()`.

It refreshes itself like the main screen: reads in a thread worker, one at a time, never blocking the UI.
Its bindings act on the job shown; Enter on a sub-job opens that sub-job's own detail screen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, ProgressBar, Static, Tree

from djobs.jobs import Checkpoint, Job, JobStatus

from ..data import Detail, DetailPoller, SubJobNode
from ..format import (
    DASH,
    age,
    full_time,
    one_line,
    pretty_json,
    progress_parts,
    short_id,
    status_text,
    wait_text,
)
from ..widgets.events import event_line
from . import LiveScreen

if TYPE_CHECKING:
    import djobs

    from ..app import DjobsApp


class JobDetailScreen(LiveScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("p", "pause", "Pause"),
        Binding("P", "pause_aggressive", "Pause (aggressive)"),
        Binding("u", "resume", "Resume"),
        Binding("c", "cancel", "Cancel"),
        Binding("t", "retry", "Retry"),
        Binding("s", "signal", "Send signal"),
    ]

    def __init__(
        self, queue: djobs.Queue, job_id: str, *, refresh: float, clock: Callable[[], datetime]
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.poller = DetailPoller(queue, job_id, clock)
        self.refresh_interval = refresh
        self.clock = clock
        self.detail: Detail | None = None
        self.loaded = False
        self._polling = False
        self._tree_signature: object = None

    @property
    def djobs_app(self) -> DjobsApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with VerticalScroll(id="detail"):
            yield Static(id="detail-fields", classes="panel")
            with Horizontal(id="detail-progress-row", classes="panel"):
                yield ProgressBar(id="detail-progress", show_eta=False)
                yield Static(id="detail-progress-label")
            with Horizontal(id="detail-payload"):
                yield Static(id="detail-args", classes="panel")
                yield Static(id="detail-result", classes="panel")
            with Vertical(id="detail-error", classes="panel"):
                yield Static(id="detail-error-message")
                yield Static(id="detail-traceback")
            yield Static(id="detail-why", classes="panel")
            yield Static(id="detail-checkpoints", classes="panel")
            with Vertical(id="detail-subjobs-box", classes="panel"):
                yield Tree[str]("sub-jobs", id="detail-subjobs")
            yield Static(id="detail-events", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"job {self.job_id}"
        for widget_id, title in (
            ("#detail-fields", "job"),
            ("#detail-progress-row", "progress"),
            ("#detail-args", "args"),
            ("#detail-result", "result"),
            ("#detail-error", "error"),
            ("#detail-why", "why is it not running"),
            ("#detail-checkpoints", "checkpoints"),
            ("#detail-subjobs-box", "sub-jobs"),
            ("#detail-events", "recent events"),
        ):
            self.query_one(widget_id).border_title = title
        tree = self.query_one("#detail-subjobs", Tree)
        tree.show_root = False
        self.poll_now()
        self.set_interval(self.refresh_interval, self.poll_now)

    def poll_now(self) -> None:
        if self._polling:
            return
        self._polling = True
        self._await_detail(self.djobs_app.reads.main.submit(self.poller.detail))

    @work(group="detail-poll", exit_on_error=False)
    async def _await_detail(self, future: Future[Detail | None]) -> None:
        try:
            detail = await asyncio.wrap_future(future)
        except Exception as exc:  # the main screen's status line reports the connection; keep what we have
            self._polling = False
            self._show_error(exc)
            return
        self._polling = False
        self.djobs_app.shown(self._show, detail)

    def _show_error(self, exc: Exception) -> None:
        self.sub_title = f"job {self.job_id} · disconnected: {exc}"

    def _show(self, detail: Detail | None) -> None:
        self.loaded = True
        if detail is None:
            self.sub_title = f"job {self.job_id}"
            self.query_one("#detail-fields", Static).update(f"[b red]job {escape(self.job_id)} not found[/]")
            return
        self.detail = detail
        self.sub_title = f"job {self.job_id}"
        job, now = detail.job, detail.taken_at
        self.query_one("#detail-fields", Static).update(_fields(job, now))
        self._show_progress(job)
        self.query_one("#detail-args", Static).update(_json(job.args))
        result = job.result if job.result is not None or job.status is JobStatus.COMPLETED else None
        self.query_one("#detail-result", Static).update(_json(result) if result is not None else Text(DASH))
        self._show_job_error(job)
        self._toggle("#detail-why", bool(detail.why))
        self.query_one("#detail-why", Static).update(Text("\n".join(f"• {line}" for line in detail.why)))
        self.query_one("#detail-checkpoints", Static).update(_checkpoints(detail.record.checkpoints))
        self._show_tree(detail)
        events = [event_line(ev, now) for ev in detail.record.events[-15:]]
        self.query_one("#detail-events", Static).update(Group(*events) if events else Text(DASH))

    def _toggle(self, selector: str, visible: bool) -> None:
        self.query_one(selector).display = visible

    def _show_job_error(self, job: Job) -> None:
        """The last error, and below it the traceback of the attempt that raised it."""
        traceback = job.last_traceback
        self._toggle("#detail-error", bool(job.last_error or traceback))
        self.query_one("#detail-error").border_title = (
            "error" if job.status is JobStatus.FAILED else f"last error (attempt {job.attempt})"
        )
        self.query_one("#detail-error-message", Static).update(Text(_cap(job.last_error or ""), style="red"))
        self._toggle("#detail-traceback", bool(traceback))
        if traceback:
            self.query_one("#detail-traceback", Static).update(
                Syntax(_cap(traceback), "pytb", theme="ansi_dark", word_wrap=True, background_color="default")
            )

    def _show_progress(self, job: Job) -> None:
        done, total, message = progress_parts(job.progress)
        row = self.query_one("#detail-progress-row")
        row.display = done is not None or bool(message)
        bar = self.query_one("#detail-progress", ProgressBar)
        if total:
            bar.update(total=total, progress=done or 0)
        elif done is not None:
            bar.update(total=None)
        label = f"{done:g}" + (f"/{total:g}" if total else "") if done is not None else ""
        self.query_one("#detail-progress-label", Static).update(
            Text.assemble((label, "bold"), ("  " + message if message else ""))
        )

    def _show_tree(self, detail: Detail) -> None:
        more = detail.record.more_sub_jobs
        signature = _tree_signature(detail.sub_jobs), more
        if signature == self._tree_signature:
            return
        self._tree_signature = signature
        box = self.query_one("#detail-subjobs-box")
        box.display = bool(detail.sub_jobs)
        tree: Tree[str] = self.query_one("#detail-subjobs", Tree)
        tree.clear()
        box.border_title = f"sub-jobs ({len(detail.sub_jobs) + more})"

        def add(parent: Any, nodes: list[SubJobNode], hidden: int) -> None:
            for node in nodes:
                label = Text.assemble(
                    status_text(node.job.status), " ", (short_id(node.job.id, 14), "bold"), " ", node.job.type
                )
                if node.children or node.more:
                    branch = parent.add(label, data=str(node.job.id), expand=True)
                    add(branch, node.children, node.more)
                else:
                    parent.add_leaf(label, data=str(node.job.id))
            if hidden:
                parent.add_leaf(Text(f"… {hidden} more", style="dim"))

        add(tree.root, detail.sub_jobs, more)
        tree.root.expand()

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        event.stop()
        if event.node.data:
            self.djobs_app.open_job(event.node.data)

    def action_back(self) -> None:
        self.dismiss()

    def action_pause(self) -> None:
        self.djobs_app.pause_job(self.job_id, aggressive=False)

    def action_pause_aggressive(self) -> None:
        self.djobs_app.pause_job(self.job_id, aggressive=True)

    def action_resume(self) -> None:
        self.djobs_app.resume_job(self.job_id)

    def action_cancel(self) -> None:
        self.djobs_app.cancel_job(self.job_id)

    def action_retry(self) -> None:
        self.djobs_app.retry_job(self.job_id)

    def action_signal(self) -> None:
        job = self.detail.job if self.detail is not None else None
        self.djobs_app.send_signal(self.job_id, job.wait_signal if job is not None else None)


def _fields(job: Job, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_column(style="bold")
    grid.add_column()
    pairs: list[tuple[str, Any]] = [
        ("id", str(job.id)),
        ("status", _status(job, now)),
        ("type", job.type),
        ("queue", job.queue),
        ("priority", str(job.priority)),
        ("attempt", f"{job.attempt} of {(job.max_retries or 0) + 1}"),
        ("created", full_time(job.created_at, now)),
        ("run at", full_time(job.run_at, now)),
        ("started", full_time(job.started_at, now)),
        ("completed", full_time(job.completed_at, now)),
        ("updated", full_time(job.updated_at, now)),
        ("heartbeat", age(job.last_heartbeat_at, now) + " ago" if job.last_heartbeat_at else DASH),
        ("unique key", job.unique_key or DASH),
        ("parent", job.parent_id or DASH),
        ("key", job.key or DASH),
        ("meta", one_line(job.meta, 60) if job.meta else DASH),
    ]
    for (k1, v1), (k2, v2) in zip(pairs[::2], pairs[1::2], strict=True):
        grid.add_row(k1, v1, k2, v2)
    return grid


def _status(job: Job, now: datetime) -> Text:
    """The status, and for a waiting job what it waits for."""
    waits = wait_text(job, now)
    return Text.assemble(status_text(job.status), (f" · {waits}" if waits else "", "blue"))


#: Characters of args, result or error shown: a multi-megabyte payload must not stall the screen.
MAX_SHOWN = 20_000


def _json(value: Any) -> Syntax:
    return Syntax(
        _cap(pretty_json(value)), "json", theme="ansi_dark", word_wrap=True, background_color="default"
    )


def _cap(text: str) -> str:
    if len(text) <= MAX_SHOWN:
        return text
    return (
        text[:MAX_SHOWN]
        + f"\n… {len(text) - MAX_SHOWN:,} more characters (djobs inspect ID --json shows all)"
    )


def _checkpoints(checkpoints: list[Checkpoint]) -> Any:
    if not checkpoints:
        return Text(DASH)
    table = Table(box=None, padding=(0, 1), show_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("name", style="bold")
    table.add_column("value")
    table.add_column("error", style="red")
    for cp in checkpoints:
        value = pretty_json(cp.value)
        table.add_row(
            DASH if cp.call_index is None else str(cp.call_index),
            cp.name,
            value if len(value) < 200 else value[:199] + "…",
            cp.error or "",
        )
    return table


def _tree_signature(nodes: list[SubJobNode]) -> tuple[Any, ...]:
    return tuple((n.job.id, n.job.status, _tree_signature(n.children), n.more) for n in nodes)
