"""Human output for the CLI: rich tables and panels (the `--json` path is `common.print_json`).

rich is imported inside the functions, never at module import, so `djobs --help` and Tab completion stay
fast. Colours only appear on a terminal (rich decides). Times are shown in UTC with a relative hint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from djobs import explain

if TYPE_CHECKING:
    from rich.console import Console

_STATUS_STYLE = {
    "pending": "cyan",
    "running": "bold blue",
    "completed": "green",
    "failed": "bold red",
    "retrying": "yellow",
    "waiting": "magenta",
    "cancelled": "dim",
    "paused": "yellow",
}
_console: Console | None = None
_err_console: Console | None = None


def console() -> Console:
    """The stdout console."""
    global _console
    from rich.console import Console

    if _console is None or _console.file is not _stdout():
        _console = Console(file=_stdout(), highlight=False, soft_wrap=False)
    return _console


def err_console() -> Console:
    """The stderr console (spinners and progress)."""
    global _err_console
    import sys

    from rich.console import Console

    if _err_console is None or _err_console.file is not sys.stderr:
        _err_console = Console(file=sys.stderr, highlight=False)
    return _err_console


def _stdout() -> Any:
    import sys

    return sys.stdout


def value(v: Any) -> str:
    """A status, enum or scalar as plain text."""
    return str(getattr(v, "value", v)) if v is not None else ""


def when(t: datetime | None) -> str:
    """`2026-11-29 10:31:02 UTC (3m ago)`; empty for None."""
    return explain.when(t) if t is not None else ""


def status(s: Any) -> str:
    """A job status with its colour markup."""
    text = value(s)
    style = _STATUS_STYLE.get(text)
    return f"[{style}]{text}[/]" if style else text


def short_json(v: Any, width: int = 60) -> str:
    """A JSON value squeezed onto one line."""
    from djobs.cli.common import to_jsonable

    text = json.dumps(to_jsonable(v), separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def _esc(text: Any) -> str:
    from rich.markup import escape

    return escape(str(text))


def _table(
    title: str | None,
    *columns: str,
    keep: tuple[str, ...] = ("ID",),
    fold: tuple[str, ...] = (),
    min_widths: dict[str, int] | None = None,
) -> Any:
    """A compact table. Columns in `keep` are never cut (ids must stay copyable), those in `fold` wrap,
    the others are cut with an ellipsis on a narrow terminal (`inspect ID` shows everything)."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
        collapse_padding=True, show_edge=False, header_style="bold",
    )  # fmt: skip
    widths = {col: max(len(col), n) for col, n in (min_widths or {}).items()}
    for col in columns:
        if col in keep:
            table.add_column(col, no_wrap=True, overflow="ignore", min_width=widths.get(col))
        elif col in fold:
            table.add_column(col, overflow="fold", min_width=widths.get(col))
        else:
            table.add_column(col, no_wrap=True, overflow="ellipsis", min_width=widths.get(col))
    return table


def _widest(values: Sequence[Any], cap: int = 40) -> int:
    return min(cap, max((len(str(v)) for v in values), default=0))


def _show(table: Any) -> None:
    """Print a table made by `_table`, first sizing the never-cut columns to their widest cell."""
    from rich.text import Text

    for column in table.columns:
        if column.overflow == "ignore":
            cells = [Text.from_markup(c).cell_len if isinstance(c, str) else 0 for c in column.cells]
            column.min_width = max([len(str(column.header)), *cells])
    console().print(table)


def _empty(title: str | None, what: str) -> None:
    console().print(f"[bold]{title}[/]: [dim]{what}[/]" if title else f"[dim]{what}[/]")


def ago(t: datetime | None) -> str:
    """Only the relative part: `3m ago`, `in 10m`."""
    return explain.relative(t) if t is not None else ""


def jobs_table(jobs: Sequence[Any], title: str | None = None) -> None:
    """A table of jobs, one row each (`djobs inspect ID` has the full times and error)."""
    if not jobs:
        _empty(title, "no jobs")
        return
    widths = {"TYPE": _widest([j.type for j in jobs], 16), "QUEUE": _widest([j.queue for j in jobs], 12), "RUN AT": 8}
    table = _table(title, "ID", "TYPE", "QUEUE", "STATUS", "TRY", "RUN AT", "ERROR", keep=("ID", "STATUS", "TRY"),
                   min_widths=widths)  # fmt: skip
    for j in jobs:
        table.add_row(
            _esc(j.id), _esc(j.type), _esc(j.queue), status(j.status), f"{j.attempt}/{j.max_retries + 1}",
            ago(j.run_at), _esc(_first_line(j.last_error or "")),
        )  # fmt: skip
    _show(table)


def job_detail(job: Any, checkpoints: Sequence[Any], subs: Sequence[Any], events: Sequence[Any]) -> None:
    """Everything about one job."""
    from rich.table import Table

    out = console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("id", _esc(job.id)), ("type", _esc(job.type)), ("queue", _esc(job.queue)),
        ("status", status(job.status)), ("priority", str(job.priority)),
        ("attempt", f"{job.attempt} of {job.max_retries + 1}"), ("run at", when(job.run_at)),
        ("created", when(job.created_at)), ("started", when(job.started_at)),
        ("completed", when(job.completed_at)), ("heartbeat", when(job.last_heartbeat_at)),
    ]  # fmt: skip
    if getattr(job, "parent_id", None):
        rows.append(("parent", _esc(job.parent_id)))
    if getattr(job, "unique_key", None):
        rows.append(("unique key", _esc(job.unique_key)))
    if getattr(job, "progress", None) is not None:
        rows.append(("progress", _esc(short_json(job.progress, 100))))
    rows.append(("args", _esc(short_json(job.args, 200))))
    if value(job.status) == "completed":
        rows.append(("result", _esc(short_json(job.result, 200))))
    if job.last_error:
        rows.append(("error", f"[red]{_esc(job.last_error.strip())}[/]"))
    for k, v in rows:
        grid.add_row(k, v)
    out.print(grid)
    if checkpoints:
        table = _table("checkpoints", "#", "NAME", "VALUE", "ERROR", keep=("#", "NAME"))
        for c in checkpoints:
            idx = "" if c.call_index is None else str(c.call_index)
            table.add_row(idx, _esc(c.name), _esc(short_json(c.value)), _esc(c.error or ""))
        out.print()
        _show(table)
    if subs:
        out.print()
        jobs_table(subs, title="sub-jobs")
    if events:
        out.print()
        events_table(events, title="recent events")


def events_table(events: Sequence[Any], title: str | None = None) -> None:
    """Stored events as a table."""
    if not events:
        _empty(title, "no events")
        return
    widths = {"KIND": _widest([e.kind for e in events], 20)}
    table = _table(title, "#", "TIME", "KIND", "JOB", "QUEUE", "DETAIL", keep=("#", "TIME", "JOB"), min_widths=widths)
    for e in events:
        table.add_row(*event_cells(e))
    _show(table)


def event_cells(e: Any) -> tuple[str, ...]:
    """The cells of one stored event."""
    data = getattr(e, "data", None)
    ts = getattr(e, "timestamp", None)
    return (
        str(getattr(e, "id", "")),
        ts.astimezone(UTC).strftime("%m-%d %H:%M:%S") if ts else "",
        _esc(getattr(e, "kind", "")),
        _esc(getattr(e, "job_id", "") or ""),
        _esc(getattr(e, "queue", "") or ""),
        _esc(short_json(data, 80) if data not in (None, {}) else ""),
    )


def event_line(e: Any) -> None:
    """One stored event as one line (for `events --follow`)."""
    ident, ts, kind, job, queue, detail = event_cells(e)
    parts = [f"[dim]{ts}[/]", f"[bold]{kind}[/]"]
    if job:
        parts.append(f"job={job}")
    if queue:
        parts.append(f"queue={queue}")
    if detail:
        parts.append(detail)
    console().print(" ".join(parts))


def overview(stats: Sequence[Any], workers: Sequence[Any], schedules: Sequence[Any]) -> None:
    """`djobs inspect` without an id."""
    statuses = ["pending", "running", "waiting", "retrying", "paused", "completed", "failed", "cancelled"]
    if not stats:
        _empty("queues", "none yet")
    else:
        table = _table("queues", "QUEUE", "PAUSED", "JOBS", keep=("QUEUE",), fold=("JOBS", "PAUSED"))
        for q in stats:
            counts = {value(k): v for k, v in q.counts.items()}
            jobs = " · ".join(f"{status(s)} {counts[s]}" for s in statuses if counts.get(s))
            paused = f"[yellow]yes[/] {_esc(q.pause_reason or '')}".strip() if q.paused else ""
            table.add_row(_esc(q.name), paused, jobs or "[dim]empty[/]")
        _show(table)
    console().print()
    workers_table(workers)
    console().print()
    schedules_table(schedules)


def workers_table(workers: Sequence[Any]) -> None:
    """Workers: host, pid, queues, paused, heartbeat."""
    if not workers:
        _empty("workers", "no live workers")
        return
    table = _table("workers", "ID", "HOST", "PID", "QUEUES", "RUNNING", "PAUSED", "HEARTBEAT", "ALIVE", fold=("QUEUES",))
    for w in workers:
        queues = ", ".join(f"{k}:{v}" for k, v in w.queues.items())
        paused = f"[yellow]{value(w.pause_mode) or 'yes'}[/]" if w.paused else ""
        running = w.running if isinstance(w.running, int) else len(w.running)
        table.add_row(
            _esc(w.id), _esc(w.host), str(w.pid), _esc(queues), str(running), paused,
            ago(w.last_heartbeat_at), "yes" if w.alive else "[red]no[/]",
        )  # fmt: skip
    _show(table)


def schedules_table(schedules: Sequence[Any]) -> None:
    """Schedules: job, spec, last and next fire."""
    if not schedules:
        _empty("schedules", "no schedules")
        return
    table = _table("schedules", "NAME", "JOB", "SPEC", "QUEUE", "LAST FIRE", "NEXT FIRE", "PAUSED", keep=("NAME",))
    for s in schedules:
        table.add_row(
            _esc(s.name), _esc(s.job), _esc(s.spec), _esc(s.queue or ""), when(s.last_fire),
            when(s.next_fire), "[yellow]yes[/]" if s.paused else "",
        )  # fmt: skip
    _show(table)


def reasons(job_id: str, items: Sequence[str]) -> None:
    """`djobs why`: one bullet per reason."""
    out = console()
    out.print(f"[bold]{_esc(job_id)}[/]")
    for r in items:
        out.print(f"  • {_esc(r)}")


def message(text: str) -> None:
    """A plain confirmation line on stdout."""
    console().print(_esc(text))


@contextmanager
def spinner(text: str, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr while the block runs (only on a terminal)."""
    import sys

    if not enabled or not sys.stderr.isatty():
        yield
        return
    with err_console().status(_esc(text)):
        yield


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= 80 else line[:79] + "…"
