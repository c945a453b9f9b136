"""Turning library records into short cells: ages, times, statuses, ids, JSON.

Pure functions, no Textual: the widgets call them and the tests can too. Every function that needs "now"
takes it as an argument, so the app's injectable clock makes snapshots deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from djobs.codec import jsonable
from djobs.jobs import JobStatus

STATUS_STYLES: dict[JobStatus, str] = {
    JobStatus.PENDING: "cyan",
    JobStatus.RUNNING: "bold yellow",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "bold red",
    JobStatus.RETRYING: "magenta",
    JobStatus.WAITING: "blue",
    JobStatus.CANCELLED: "bright_black",
    JobStatus.PAUSED: "bold dark_orange",
}

DASH = "—"


def status_text(status: JobStatus) -> Text:
    return Text(status.value, style=STATUS_STYLES[status])


def short_id(job_id: object, width: int = 12) -> str:
    """Ids longer than `width` are cut, keeping the end (time-ordered ids differ most at the end)."""
    text = str(job_id) if job_id is not None else ""
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1) :]


def age(then: datetime | None, now: datetime) -> str:
    """Compact age of `then` relative to `now`: 4s, 3m, 2h, 5d; future times get a leading 'in '."""
    if then is None:
        return DASH
    seconds = (now - _aware(then)).total_seconds()
    prefix = ""
    if seconds < 0:
        prefix, seconds = "in ", -seconds
    if seconds < 60:
        body = f"{int(seconds)}s"
    elif seconds < 3600:
        body = f"{int(seconds // 60)}m"
    elif seconds < 86400:
        body = f"{int(seconds // 3600)}h"
    else:
        body = f"{int(seconds // 86400)}d"
    return prefix + body


#: A fire time this far in the past is only the scheduler's next tick away; later than that it is overdue
#: (no worker runs the scheduler, or it is behind).
DUE_GRACE = 5.0


def next_fire(then: datetime | None, now: datetime) -> Text:
    """A schedule's next fire time: "in 3m"; "due" just after it passed; "overdue 13m" once it is late."""
    if then is None:
        return Text(DASH)
    late = (now - _aware(then)).total_seconds()
    if late <= 0:
        return Text(age(then, now))
    if late <= DUE_GRACE:
        return Text("due", style="yellow")
    return Text(f"overdue {age(then, now)}", style="bold red")


def clock_time(then: datetime | None, now: datetime) -> str:
    """HH:MM:SS for times today (UTC), otherwise YYYY-MM-DD HH:MM."""
    if then is None:
        return DASH
    then = _aware(then).astimezone(UTC)
    if then.date() == now.astimezone(UTC).date():
        return then.strftime("%H:%M:%S")
    return then.strftime("%Y-%m-%d %H:%M")


def full_time(then: datetime | None, now: datetime) -> str:
    if then is None:
        return DASH
    then = _aware(then).astimezone(UTC)
    return (
        f"{then.strftime('%Y-%m-%d %H:%M:%S')} UTC ({age(then, now)} ago)"
        if then <= now
        else (f"{then.strftime('%Y-%m-%d %H:%M:%S')} UTC ({age(then, now)})")
    )


def wait_text(job: Any, now: datetime) -> str:
    """What a waiting job waits for, in words: "sleeping until 14:05:00", "waiting for signal 'approved'",
    "waiting on sub-jobs"; empty for a job that is not waiting. Takes a `Job` or a `JobSummary`."""
    if job.status is not JobStatus.WAITING:
        return ""
    at = clock_time(job.run_at, now) if job.run_at is not None else ""
    if job.wait_kind == "sleep":
        return f"sleeping until {at}" if at else "sleeping"
    if job.wait_kind == "signal":
        name = f" {job.wait_signal!r}" if job.wait_signal else ""
        return f"waiting for signal{name}" + (f" (times out at {at})" if at else "")
    # A fan-out parent (rows written before waits had a kind were all fan-out parents).
    return "waiting on sub-jobs"


def pretty_json(value: Any) -> str:
    """Indented JSON of a stored value or record, through the library's one JSON conversion."""
    return json.dumps(jsonable(value), indent=2, sort_keys=True, ensure_ascii=False)


def one_line(value: Any, width: int = 60) -> str:
    if value is None:
        return ""
    text = (
        value if isinstance(value, str) else json.dumps(jsonable(value), sort_keys=True, ensure_ascii=False)
    )
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def progress_parts(progress: Mapping[str, Any] | None) -> tuple[float | None, float | None, str]:
    """(done, total, message) from `Job.progress` (`ctx.progress(done, total, message)`); values of the
    wrong type (the row is written by any process) read as absent."""
    if not isinstance(progress, Mapping):  # nothing reported, or not what `ctx.progress` writes
        return None, None, ""
    done, total, message = progress.get("done"), progress.get("total"), progress.get("message")
    return (
        float(done) if isinstance(done, (int, float)) else None,
        float(total) if isinstance(total, (int, float)) else None,
        str(message) if message else "",
    )


def progress_cell(progress: Mapping[str, Any] | None) -> str:
    done, total, message = progress_parts(progress)
    if done is None:
        return message
    if total:
        return f"{100 * done / total:.0f}%"
    return f"{done:g}"


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
