"""The live Textual dashboard: `djobs tui`.

    import djobs, djobs.tui
    queue = djobs.Queue(djobs.connect("sqlite:///djobs.db"))
    djobs.tui.run(queue)                      # what `djobs tui` does
    app = djobs.tui.make_app(queue, refresh=0.5)   # the same app, for tests: `async with app.run_test()`

Keys (the footer shows those of the focused panel): Tab or 1-4 move between the queues, workers,
schedules and jobs panels; in the jobs table Enter opens the job, p/P pause it (graceful/aggressive),
u resumes, c cancels (after a confirmation), t retries, d deletes a finished job (after a confirmation),
s sends a signal (a name and a JSON payload) to the job, ] and [ page to older/newer jobs, space marks a job and a marks every job shown (then c, t and d act on
the marked jobs, after a confirmation; Escape clears the marks); in the queues, workers and schedules panels p/P/u pause and resume the selected row;
/ filters the jobs (`failed mail`: a bare word is a status or part of a type or queue name;
`status:failed queue:emails type:send-email` pick exactly; `meta:tenant=42` picks jobs whose meta holds
that text, `meta:count:=3` that JSON value), f shows the failed jobs with their last error (again: every
job), n enqueues a job, F5 refreshes now, q quits.
Waiting jobs say what they wait for (a sleep's wake-up time, a signal's name, sub-jobs); the queues panel
shows each queue's limits and how many due jobs each limit holds back.

Only this package imports Textual, and it reads the database through the public `djobs.Queue` API only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import djobs
    from djobs.config import Config

    from .app import DjobsApp

__all__ = ["make_app", "run"]


def make_app(
    queue: djobs.Queue,
    *,
    refresh: float = 1.0,
    clock: Callable[[], datetime] | None = None,
    subtitle: str | None = None,
    job_window: int | None = None,
) -> DjobsApp:
    """The dashboard app over `queue`, refreshing every `refresh` seconds.

    `clock` replaces "now" for ages and times shown (snapshot tests freeze it); `subtitle` goes in the
    header (the CLI shows the database there); `job_window` is the number of rows in the jobs table."""
    from .data import JOB_WINDOW, Poller
    from .reader import Start

    # Start reading before importing Textual: the first frame waits for whichever is slower, not both.
    window = job_window or JOB_WINDOW
    start = Start(Poller(queue, job_window=window, clock=clock))
    from .app import DjobsApp

    return DjobsApp(queue, refresh=refresh, clock=clock, subtitle=subtitle, job_window=window, start=start)


def run(queue: djobs.Queue, config: Config | None = None, *, refresh: float | None = None) -> None:
    """Run the dashboard in the terminal until the operator quits (what `djobs tui` calls)."""
    interval = refresh if refresh is not None else _config_refresh(config)
    make_app(queue, refresh=interval, subtitle=_describe_database(config)).run()


def _config_refresh(config: Config | None) -> float:
    value = config.tui.get("refresh") if config is not None else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return 1.0


def _describe_database(config: Config | None) -> str | None:
    url = config.database if config is not None else None
    if not url:
        return None
    # Never show a password in the header.
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"
    return url
