"""`DjobsApp`: the main screen, the polling loop and every operator action.

Reads run on the two reader threads of `reader.Reads`, one refresh at a time (a refresh still running
when the timer fires again is not doubled); an async worker awaits each one and puts it on screen. The
per-queue counts are read apart, as often as their cost allows, so neither the first frame nor a refresh
waits for them. A refresh that raises anything (`djobs.StorageUnavailable`, a driver error, a vanished
file) marks the app disconnected, keeps the last data on screen and retries with backoff until a
refresh succeeds again.

Actions run in thread workers too and end in a notification saying what happened; cancel asks first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Header

import djobs
from djobs.jobs import QueueStats

from .data import EVENT_WINDOW, JOB_WINDOW, JobFilter, Poller, Snapshot
from .format import clock_time, short_id
from .reader import Start
from .screens import LiveScreen
from .screens.dialogs import ConfirmScreen, EnqueueRequest, EnqueueScreen, SignalRequest, SignalScreen
from .widgets.events import EventLog
from .widgets.jobs import FilterBar, JobsTable
from .widgets.overview import QueueSummary, SchedulesPanel, WorkersPanel
from .widgets.status import StatusLine

T = TypeVar("T")

MAX_BACKOFF = 10.0
#: Terminals with fewer lines than this hide the title bar (80x24 needs the line for the panels).
SHORT = 30


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DjobsApp(App[None]):
    CSS_PATH = "djobs.tcss"
    TITLE = "djobs"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "filter", "Filter"),
        Binding("n", "enqueue", "Enqueue"),
        Binding("f", "failed", "Failed jobs"),
        Binding("f5", "refresh_now", "Refresh"),
        Binding("1", "focus_panel('queues')", "Queues", show=False),
        Binding("2", "focus_panel('workers')", "Workers", show=False),
        Binding("3", "focus_panel('schedules')", "Schedules", show=False),
        Binding("4", "focus_panel('jobs')", "Jobs", show=False),
    ]

    def __init__(
        self,
        queue: djobs.Queue,
        *,
        refresh: float = 1.0,
        clock: Callable[[], datetime] | None = None,
        job_window: int = JOB_WINDOW,
        event_window: int = EVENT_WINDOW,
        subtitle: str | None = None,
        start: Start | None = None,
    ) -> None:
        super().__init__()
        self.queue = queue
        self.refresh_interval = refresh
        self.clock = clock or _utcnow
        self.job_window = job_window
        self.start = start or Start(
            Poller(queue, job_window=job_window, event_window=event_window, clock=self.clock)
        )
        self.poller = self.start.poller
        self.reads = self.start.reads
        self.job_filter = JobFilter()
        self.snapshot: Snapshot | None = None
        #: The last per-queue counts read (empty until the first count answered).
        self.stats: list[QueueStats] = []
        self.connected: bool | None = None  # None until the first poll answered
        self.polls = 0
        self.counts_read = 0
        #: Every notification shown, newest last (the operator's action history; tests read it too).
        self.history: deque[str] = deque(maxlen=100)
        self._polling = False
        self._counting = False
        self._count_again = False
        self._failures = 0
        self._next_poll = 0.0
        self._bad_data: set[str] = set()
        if subtitle:
            self.sub_title = subtitle

    # ---- layout ----

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="overview"):
            yield QueueSummary(id="queues")
            yield WorkersPanel(id="workers")
        with Vertical(id="jobs-region"):
            yield FilterBar()
            yield JobsTable(id="jobs")
        with Horizontal(id="bottom"):
            yield EventLog()
            yield SchedulesPanel(id="schedules")
        yield StatusLine("connecting…", id="status")
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        self.screen_stack[0].set_class(event.size.height < SHORT, "-short")

    def on_mount(self) -> None:
        self.screen_stack[0].set_class(self.size.height < SHORT, "-short")
        self.query_one(FilterBar).display = False
        self.query_one(JobsTable).border_title = "jobs"
        self.query_one(QueueSummary).border_title = "queues · counting…"
        self.query_one(JobsTable).focus()
        # The first reads were started before Textual was imported (`make_app`): wait for those.
        self._polling = self._counting = True
        self._await_snapshot(self.start.snapshot)
        self._await_counts(self.start.counts)
        self.set_interval(self.refresh_interval, self._tick)

    def on_unmount(self) -> None:
        self.reads.close()

    # ---- polling ----

    def _tick(self) -> None:
        if time.monotonic() >= self._next_poll:
            self.poll_now()

    def poll_now(self, *, force: bool = False) -> None:
        """Start a refresh unless one is running; `force` re-reads the queue counts now too."""
        self._count(force)
        if self._polling:
            return
        self._polling = True
        self._await_snapshot(self.reads.main.submit(self.poller.snapshot, self.job_filter))

    def _count(self, force: bool) -> None:
        if self._counting:
            self._count_again = self._count_again or force  # counted again as soon as this one is done
            return
        if force or self.poller.counts_due():
            self._counting = True
            self._await_counts(self.reads.counts.submit(self.poller.counts))

    @work(group="poll", exit_on_error=False)
    async def _await_snapshot(self, future: Future[Snapshot]) -> None:
        try:
            snapshot = await asyncio.wrap_future(future)
        except Exception as exc:  # any failure at the poll boundary means "disconnected", never a crash
            self._polling = False
            self._poll_failed(exc)
            return
        self._polling = False
        self.shown(self._apply, snapshot)

    @work(group="counts", exit_on_error=False)
    async def _await_counts(self, future: Future[list[QueueStats]]) -> None:
        try:
            stats = await asyncio.wrap_future(future)
        except Exception:  # the refresh beside it reports the connection; the last counts stay shown
            stats = None
        self._counting = False
        if stats is not None:
            self.shown(self._apply_counts, stats)
        if self._count_again:
            self._count_again = False
            self._count(True)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.call_from_thread(fn, *args)
        except RuntimeError:  # the app is shutting down
            pass

    def shown(self, show: Callable[[T], None], data: T) -> None:
        """Put data on screen; a value no widget expected (a row written by hand, a newer writer) is
        reported once and the rest of the app goes on, instead of taking the dashboard down."""
        try:
            show(data)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
            if message not in self._bad_data:
                self._bad_data.add(message)
                self.notify(f"some data could not be shown: {message}", title="djobs", severity="error")

    def _apply(self, snap: Snapshot) -> None:
        self.snapshot = snap
        if self.connected is False:
            self.notify("Reconnected to the database", title="djobs")
        self.connected = True
        self._failures = 0
        self._next_poll = 0.0
        self.polls += 1
        now = snap.taken_at
        self.query_one(WorkersPanel).update_from(snap.workers, now)
        self.query_one(SchedulesPanel).update_from(snap.schedules, now)
        self.query_one(JobsTable).update_from(
            snap.jobs, snap.job_filter, self.job_window, now, snap.filter_note
        )
        self.query_one(EventLog).add(snap.events, now)
        self._show_status()

    def _apply_counts(self, stats: list[QueueStats]) -> None:
        self.stats = stats
        self.counts_read += 1
        summary = self.query_one(QueueSummary)
        summary.update_from(stats, self.poller.limits)
        summary.border_title = "queues"
        self._show_status()

    def _show_status(self) -> None:
        if self.snapshot is None or self.connected is False:
            return
        now = self.snapshot.taken_at
        if self.counts_read:
            total = sum(sum(st.counts.values()) for st in self.stats)
            counted = f"{total:,} jobs in {len(self.stats)} queues"
        else:
            counted = "counting jobs…"
        self.query_one(StatusLine).show_connected(
            f"read at {clock_time(now, now)} · {counted} · {len(self.snapshot.workers)} workers"
        )

    def _poll_failed(self, exc: Exception) -> None:
        self._failures += 1
        backoff = min(MAX_BACKOFF, self.refresh_interval * (2 ** min(self._failures - 1, 6)))
        self._next_poll = time.monotonic() + backoff
        was = self.connected
        self.connected = False
        message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:160]
        self.query_one(StatusLine).show_disconnected(message, backoff)
        if was is not False:
            self.notify(message, title="Database disconnected", severity="error")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Over a dialog only the dialog's keys work: `n` typed on a button must not stack another form.
        if action in ("enqueue", "filter", "failed", "refresh_now", "focus_panel") and isinstance(
            self.screen, ModalScreen
        ):
            return False
        if action == "failed" and self.screen is not self.screen_stack[0]:
            return False  # it filters the main screen's jobs table
        return True

    # ---- navigation ----

    def action_refresh_now(self) -> None:
        self._next_poll = 0.0
        self.poll_now(force=True)

    def action_focus_panel(self, widget_id: str) -> None:
        self.query_one(f"#{widget_id}").focus()

    def action_filter(self) -> None:
        if self.screen is self.screen_stack[0]:
            self.query_one(FilterBar).open()

    def action_failed(self) -> None:
        """The dead letters: failed jobs with their last error (`a` marks them all, `t` retries the marked);
        pressed again, every job."""
        if self.screen is not self.screen_stack[0]:
            return
        text = "" if self.job_filter == JobFilter(status="failed") else "failed"
        self.query_one(FilterBar).value = text
        self._apply_filter(text)

    def on_filter_bar_applied(self, message: FilterBar.Applied) -> None:
        self._apply_filter(message.text)

    def _apply_filter(self, text: str) -> None:
        try:
            self.job_filter = JobFilter.parse(text)
        except ValueError as exc:
            self.notify(str(exc), title="Filter", severity="error")
            return
        self.query_one(FilterBar).action_close()
        self.query_one(JobsTable).border_title = "jobs · " + (self.job_filter.describe() or "all")
        self.action_refresh_now()

    def page_jobs(self, delta: int) -> None:
        """Show the next older (`delta` 1) or newer (-1) window of jobs."""
        snap = self.snapshot
        if snap is None or snap.job_filter != self.job_filter:
            return  # the page asked for last is not shown yet
        page = self.job_filter.page + delta
        if page < 0 or (delta > 0 and len(snap.jobs) < self.job_window):
            return  # already at the newest, or nothing older
        self.job_filter = dataclasses.replace(self.job_filter, page=page)
        self.action_refresh_now()

    def open_job(self, job_id: str) -> None:
        from .screens.detail import JobDetailScreen  # imported on first use: it pulls in Pygments

        self.push_screen(JobDetailScreen(self.queue, job_id, refresh=self.refresh_interval, clock=self.clock))

    # ---- actions ----

    def notify(self, message: str, *, title: str = "", **kwargs: Any) -> None:  # type: ignore[override]
        self.history.append(f"{title}: {message}" if title else message)
        super().notify(message, title=title, **kwargs)

    def act(self, what: str, fn: Callable[[], object]) -> None:
        """Run a library call off the UI thread and report how it went."""
        self._act(what, fn)

    @work(thread=True, group="actions", exit_on_error=False)
    def _act(self, what: str, fn: Callable[[], object]) -> None:
        try:
            result = fn()
        except Exception as exc:
            self._call(self._acted, what, f"{type(exc).__name__}: {exc}", "error")
            return
        if result is False:
            self._call(self._acted, what, "nothing to do (already in that state?)", "warning")
        else:
            self._call(self._acted, what, "done", "information")

    def _acted(self, what: str, outcome: str, severity: Any) -> None:
        title = {"information": "Done", "warning": "No change", "error": "Failed"}.get(severity, "")
        self.notify(f"{what}: {outcome}", title=title, severity=severity)
        self.action_refresh_now()
        if isinstance(self.screen, LiveScreen):  # the detail screen refreshes itself too
            self.screen.poll_now()

    def pause_job(self, job_id: str, *, aggressive: bool) -> None:
        mode = djobs.PauseMode.AGGRESSIVE if aggressive else djobs.PauseMode.GRACEFUL
        self.act(
            f"Pause job {short_id(job_id)} ({mode.value})", lambda: self.queue.pause_job(job_id, mode=mode)
        )

    def resume_job(self, job_id: str) -> None:
        self.act(f"Resume job {short_id(job_id)}", lambda: self.queue.resume_job(job_id))

    def retry_job(self, job_id: str) -> None:
        self.act(f"Retry job {short_id(job_id)}", lambda: self.queue.retry_job(job_id))

    def cancel_job(self, job_id: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.act(f"Cancel job {short_id(job_id)}", lambda: self.queue.cancel_job(job_id))

        self.push_screen(
            ConfirmScreen(
                f"Cancel job [b]{job_id}[/]?\nCancelling cannot be undone (retry makes a new attempt)."
            ),
            answered,
        )

    def send_signal(self, job_id: str, waits_for: str | None = None) -> None:
        """Ask for a signal's name (the one the job waits for, when known) and JSON payload, then send it."""

        def submitted(request: SignalRequest | None) -> None:
            if request is not None:
                self.act(
                    f"Signal {request.name!r} to job {short_id(job_id)}",
                    lambda: self.queue.signal(job_id, request.name, request.payload),
                )

        self.push_screen(SignalScreen(job_id, waits_for), submitted)

    def bulk(self, verb: str, job_ids: list[str], not_shown: int = 0) -> None:
        """Retry, cancel or delete many jobs (the marked ones; delete also one) after a confirmation naming
        how many."""
        what = {
            "retry": "Failed and cancelled ones start again from their first attempt; the others are left as "
            "they are.",
            "cancel": "Cancelling cannot be undone (retry makes a new attempt); the sub-jobs of a cancelled "
            "job are cancelled with it, and finished jobs are left as they are.",
            "delete": "Deleting cannot be undone: finished jobs go with their checkpoints and events; jobs "
            "not finished are left as they are (cancel them first).",
        }[verb]
        n = len(job_ids)
        hidden = f" ({not_shown:,} of them not shown now)" if not_shown else ""
        which = (
            f"job [b]{job_ids[0]}[/]"
            if n == 1 and not not_shown
            else f"[b]{n:,}[/] marked job{'s' if n != 1 else ''}"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._bulk(verb, job_ids)

        self.push_screen(ConfirmScreen(f"{verb.capitalize()} {which}{hidden}?\n{what}"), answered)

    @work(thread=True, group="actions", exit_on_error=False)
    def _bulk(self, verb: str, job_ids: list[str]) -> None:
        changed = unchanged = 0
        errors: Counter[str] = Counter()
        if verb == "delete":  # one call for the lot: the library skips what is not finished
            try:
                changed = self.queue.delete_jobs(job_ids)
                unchanged = len(job_ids) - changed
            except Exception as exc:
                errors[type(exc).__name__] += len(job_ids)
        else:
            act = self.queue.retry_job if verb == "retry" else self.queue.cancel_job
            for job_id in job_ids:
                try:
                    if act(job_id):
                        changed += 1
                    else:
                        unchanged += 1
                except Exception as exc:  # one job's refusal (gone, duplicate key) must not stop the rest
                    errors[type(exc).__name__] += 1
        done = {"retry": "retried", "cancel": "cancelled", "delete": "deleted"}[verb]
        parts = [f"{changed:,} {done}"]
        if unchanged:
            parts.append(
                f"{unchanged:,} left as they were"
                if verb != "delete"
                else f"{unchanged:,} not finished (kept)"
            )
        parts += [f"{count:,} failed ({name})" for name, count in errors.most_common()]
        severity = "error" if errors and not changed else "warning" if errors or unchanged else "information"
        what = f"{verb.capitalize()} {len(job_ids):,} job{'s' if len(job_ids) != 1 else ''}"
        self._call(self._bulk_done, set(job_ids), what, ", ".join(parts), severity)

    def _bulk_done(self, job_ids: set[str], what: str, outcome: str, severity: Any) -> None:
        self.query_one(JobsTable).forget_marks(job_ids)
        self._acted(what, outcome, severity)

    def pause_queue(self, name: str) -> None:
        self.act(f"Pause queue {name}", lambda: self.queue.pause_queue(name))

    def resume_queue(self, name: str) -> None:
        self.act(f"Resume queue {name}", lambda: self.queue.resume_queue(name))

    def pause_worker(self, worker_id: str, *, aggressive: bool) -> None:
        mode = djobs.PauseMode.AGGRESSIVE if aggressive else djobs.PauseMode.GRACEFUL
        self.act(
            f"Pause worker {worker_id} ({mode.value})", lambda: self.queue.pause_worker(worker_id, mode=mode)
        )

    def resume_worker(self, worker_id: str) -> None:
        self.act(f"Resume worker {worker_id}", lambda: self.queue.resume_worker(worker_id))

    def pause_schedule(self, name: str) -> None:
        self.act(f"Pause schedule {name}", lambda: self.queue.pause_schedule(name))

    def resume_schedule(self, name: str) -> None:
        self.act(f"Resume schedule {name}", lambda: self.queue.resume_schedule(name))

    def action_enqueue(self) -> None:
        self._open_enqueue()

    @work(thread=True, group="actions", exit_on_error=False)
    def _open_enqueue(self) -> None:
        # The registered types come from the library; read them off the UI thread like everything else.
        try:
            types = sorted({*self.queue.job_types(), *(t.name for t in self.queue.known_types())})
        except Exception:
            types = []
        known = sorted({*types, *(j.type for j in (self.snapshot.jobs if self.snapshot else []))})
        queues = [st.name for st in self.stats]
        self._call(self._show_enqueue, types or known, queues)

    def _show_enqueue(self, types: list[str], queues: list[str]) -> None:
        def submitted(request: EnqueueRequest | None) -> None:
            if request is not None:
                self._enqueue(request)

        self.push_screen(EnqueueScreen(types, queues), submitted)

    @work(thread=True, group="actions", exit_on_error=False)
    def _enqueue(self, request: EnqueueRequest) -> None:
        options: dict[str, Any] = {}
        if request.queue:
            options["queue"] = request.queue
        if request.priority is not None:
            options["priority"] = request.priority
        try:
            job_id = self.queue.enqueue(request.type, request.args, **options)
        except Exception as exc:
            self._call(self._acted, f"Enqueue {request.type}", f"{type(exc).__name__}: {exc}", "error")
            return
        self._call(self._acted, f"Enqueue {request.type}", f"job {job_id}", "information")
