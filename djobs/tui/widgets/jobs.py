"""The jobs region: a filter bar (`/`) over a table of the newest jobs.

The table shows a bounded window (the newest `JOB_WINDOW` jobs matching the filter), so it costs the same
with a million jobs in the database. Its bindings act on the job under the cursor, or, once jobs are
marked (space marks one, `a` every job shown), retry, cancel and delete act on the marked jobs after a
confirmation naming how many. Marks are kept across refreshes, pages and filters until acted on or
cleared (Escape).
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input

from djobs.jobs import TERMINAL, Job

from ..data import JobFilter
from ..format import age, one_line, progress_cell, short_id, status_text, wait_text
from .table import Column, LiveTable, Row

MARK = Text("●", style="bold yellow")


class FilterBar(Input):
    """Hidden until `/`. Enter applies the filter, Escape closes the bar (keeping the filter)."""

    BINDINGS = [Binding("escape", "close", "Close filter")]

    class Applied(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self) -> None:
        super().__init__(
            placeholder="filter: words match part of a type or queue (mail, failed mail); "
            "status: queue: type: pick exactly; meta:tenant=42 (text) or meta:n:=3 (JSON); empty clears",
            id="filter",
        )

    def open(self) -> None:
        self.display = True
        self.focus()

    def action_close(self) -> None:
        self.display = False
        self.app.query_one(JobsTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Applied(event.value))


class JobsTable(LiveTable):
    COLUMNS = (
        Column("", 1),  # the mark: takes no space while nothing is marked
        Column("id", 12),
        Column("type", 24, shrink_to=10),
        Column("queue", 16, shrink_to=7),
        Column("status", 9),
        Column("pri", number=True),
        Column("try", number=True),
        Column("prog", 6),
        Column("created", 7),
        Column("error / waiting for", 60, shrink_to=5),
    )
    BINDINGS = [
        Binding("enter", "open", "Detail"),
        Binding("p", "pause", "Pause job"),
        Binding("P", "pause_aggressive", "Pause job (aggressive)"),
        Binding("u", "resume", "Resume job"),
        Binding("c", "cancel", "Cancel job"),
        Binding("t", "retry", "Retry job"),
        Binding("d", "delete", "Delete job"),
        Binding("s", "signal", "Send signal"),
        Binding("space", "mark", "Mark"),
        Binding("a", "mark_all", "Mark all shown"),
        Binding("escape", "clear_marks", "Clear marks", show=False),
        Binding("right_square_bracket", "page(1)", "Older jobs", show=False),
        Binding("left_square_bracket", "page(-1)", "Newer jobs", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: Ids of the marked jobs, shown or not.
        self.marked: set[str] = set()
        self._shown: tuple[list[Job], JobFilter, int, datetime, str] | None = None

    def update_from(
        self, jobs: list[Job], job_filter: JobFilter, window: int, now: datetime, note: str = ""
    ) -> None:
        self._shown = jobs, job_filter, window, now, note
        rows: list[Row] = []
        for job in jobs:
            error = one_line(job.last_error, 48) if job.last_error else ""
            waits = wait_text(job, now)
            tail: Text | str = Text(waits, style="blue") if waits else Text(error, style="red") if error else ""
            rows.append(
                (
                    job.id,
                    (
                        MARK if job.id in self.marked else "",
                        short_id(job.id),
                        job.type,
                        job.queue,
                        status_text(job.status),
                        str(job.priority),
                        f"{job.attempt}/{(job.max_retries or 0) + 1}",
                        # a finished job's last progress report is history, not news
                        "" if job.status in TERMINAL else progress_cell(job.progress),
                        age(job.created_at, now),
                        tail,
                    ),
                )
            )
        self.sync(rows)
        if job_filter.page:
            first = job_filter.page * window + 1
            shown = f"{first:,}–{first + len(jobs) - 1:,} newest ([ newer, ] older)"
        elif len(jobs) >= window:
            shown = f"newest {len(jobs)} (] older)"
        else:
            shown = f"{len(jobs)} jobs"
        described = job_filter.describe()
        title = f"jobs · {shown}" + (f" · {described}" if described else "") + (f" ({note})" if note else "")
        if self.marked:
            title += f" · {len(self.marked):,} marked"
        if title != self.border_title:  # setting it repaints the whole table
            self.border_title = title

    def _repaint(self) -> None:
        if self._shown is not None:
            self.update_from(*self._shown)

    def marked_not_shown(self) -> int:
        return len(self.marked - set(self.keys()))

    def action_mark(self) -> None:
        if (job_id := self.selected_key()) is not None:
            self.marked ^= {job_id}
            self._repaint()
            self.move_cursor(self.cursor_row + 1)

    def action_mark_all(self) -> None:
        """Mark every job shown; when all of them are marked already, unmark them."""
        shown = set(self.keys())
        if shown and shown <= self.marked:
            self.marked -= shown
        else:
            self.marked |= shown
        self._repaint()

    def action_clear_marks(self) -> None:
        if self.marked:
            self.marked.clear()
            self._repaint()

    def forget_marks(self, job_ids: set[str]) -> None:
        """Unmark jobs an action has dealt with."""
        if self.marked & job_ids:
            self.marked -= job_ids
            self._repaint()

    def action_page(self, delta: int) -> None:
        self.djobs_app.page_jobs(delta)

    def action_open(self) -> None:
        if (job_id := self.selected_key()) is not None:
            self.djobs_app.open_job(job_id)

    def action_pause(self) -> None:
        if (job_id := self.selected_key()) is not None:
            self.djobs_app.pause_job(job_id, aggressive=False)

    def action_pause_aggressive(self) -> None:
        if (job_id := self.selected_key()) is not None:
            self.djobs_app.pause_job(job_id, aggressive=True)

    def action_resume(self) -> None:
        if (job_id := self.selected_key()) is not None:
            self.djobs_app.resume_job(job_id)

    def action_cancel(self) -> None:
        if self.marked:
            self.djobs_app.bulk("cancel", sorted(self.marked), self.marked_not_shown())
        elif (job_id := self.selected_key()) is not None:
            self.djobs_app.cancel_job(job_id)

    def action_delete(self) -> None:
        if self.marked:
            self.djobs_app.bulk("delete", sorted(self.marked), self.marked_not_shown())
        elif (job_id := self.selected_key()) is not None:
            self.djobs_app.bulk("delete", [job_id])

    def action_signal(self) -> None:
        if (job_id := self.selected_key()) is not None:
            shown = self._shown[0] if self._shown is not None else []
            waits_for = next((j.wait_signal for j in shown if j.id == job_id), None)
            self.djobs_app.send_signal(job_id, waits_for)

    def action_retry(self) -> None:
        if self.marked:
            self.djobs_app.bulk("retry", sorted(self.marked), self.marked_not_shown())
        elif (job_id := self.selected_key()) is not None:
            self.djobs_app.retry_job(job_id)
