"""Human output for the CLI: rich tables and panels (the `--json` path is `common.print_json`).

rich is imported inside the functions, never at module import, so `djobs --help` and Tab completion stay
fast. Colours only appear on a terminal (rich decides). Times are shown in UTC with a relative hint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

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
    """The stdout console: as wide as the terminal, or unlimited (nothing cut) with `--wide` or when stdout
    is a pipe or a file, where a reader wants whole values, not `Q…`."""
    global _console
    from rich.console import Console

    from djobs.cli import common

    out = _stdout()
    unlimited = common.WIDE or not out.isatty()
    if _console is None or _console.file is not out or _console_unlimited != unlimited:
        _console = Console(file=out, highlight=False, soft_wrap=False, width=UNLIMITED if unlimited else None)
        globals()["_console_unlimited"] = unlimited
    return _console


UNLIMITED = 1_000_000  # columns: wider than any row
_console_unlimited = False


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


def _esc(text: Any, keep_newlines: bool = False) -> str:
    """Stored text as rich markup: control characters escaped (`common.printable`), markup neutralised."""
    from rich.markup import escape

    from djobs.cli.common import printable

    return escape(printable(str(text), keep_newlines))


def _table(
    title: str | None, *columns: str, keep: tuple[str, ...] = ("ID",), fold: tuple[str, ...] = (), flex: str | None = None
) -> Any:
    """A compact table. On a terminal too narrow for every cell, `flex` gives way first, then the other
    columns, widest first; `keep` columns are never cut (ids must stay copyable), `fold` columns wrap instead
    of being cut. `inspect ID` shows every value whole; so does any table with `--wide` or in a pipe."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
        collapse_padding=True, show_edge=False, header_style="bold",
    )  # fmt: skip
    for col in columns:
        overflow: Literal["ignore", "fold", "ellipsis"] = "ignore" if col in keep else "fold" if col in fold else "ellipsis"
        table.add_column(col, no_wrap=col not in fold, overflow=overflow)
    table.djobs_flex = flex  # type: ignore[attr-defined]  # read back by _show
    return table


def plan_widths(natural: list[int], headers: list[int], kinds: list[str], flex: int | None, room: int) -> list[int]:
    """Column widths that fit `room` cells. In stages: `flex` down to 20 cells, the other cuttable columns
    (widest first) down to their header or 6 cells, `flex` down to 8, then every cuttable column down to
    3 cells. `keep` columns are never cut; when they alone do not fit, the sum exceeds `room`."""
    widths = list(natural)
    over = sum(widths) - room
    others = sorted((i for i, k in enumerate(kinds) if k != "keep" and i != flex), key=lambda i: -natural[i])
    flexes = [flex] if flex is not None else []
    stages = [(flexes, lambda i: 20), (others, lambda i: max(headers[i], 6)), (flexes, lambda i: 8),
              ([*flexes, *others], lambda i: 3)]  # fmt: skip
    for columns, floor in stages:
        for i in columns:
            if over <= 0:
                return widths
            cut = min(over, widths[i] - min(natural[i], floor(i)))
            if cut > 0:
                widths[i] -= cut
                over -= cut
    return widths


def _show(table: Any) -> None:
    """Print a table made by `_table` with its cells cut to planned widths (see `plan_widths`).

    djobs cuts the cells itself and lets rich lay out an unbounded width: rich's own shrinking drops whole
    columns on a narrow terminal.
    """
    from rich.text import Text

    out = console()
    headers = [Text.from_markup(str(c.header)).cell_len for c in table.columns]
    cells = [[Text.from_markup(v) if isinstance(v, str) else v for v in c._cells] for c in table.columns]
    natural = [
        max([headers[i], *(v.cell_len if isinstance(v, Text) else 0 for v in col)]) for i, col in enumerate(cells)
    ]
    gaps = _GAP * (len(natural) - 1)
    widths = natural
    if sum(natural) + gaps > out.width:
        kinds = ["keep" if c.overflow == "ignore" else "cut" for c in table.columns]
        names = [str(c.header) for c in table.columns]
        flex = names.index(table.djobs_flex) if table.djobs_flex in names else None
        widths = plan_widths(natural, headers, kinds, flex, out.width - gaps)
    for column, col, width in zip(table.columns, cells, widths, strict=True):
        if headers[table.columns.index(column)] > width:
            column.header = str(column.header)[: max(1, width - 1)] + "…"
        for v in col:
            if isinstance(v, Text) and v.cell_len > width:
                if column.overflow == "fold":
                    continue  # wraps within its width
                v.truncate(width, overflow="ellipsis")
        column._cells = col
        column.width = width if column.overflow == "fold" else None
    out.print(table, width=UNLIMITED)


_GAP = 2  # cells between two columns (padding 1 on each side; no padding at the edges)


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
    runs = [ago(j.run_at) for j in jobs]
    table = _table(title, "ID", "TYPE", "QUEUE", "STATUS", "TRY", "RUN AT", "ERROR", keep=("ID", "STATUS", "TRY"),
                   flex="ERROR")  # fmt: skip
    for j, run_at in zip(jobs, runs, strict=True):
        table.add_row(
            _esc(j.id), _esc(j.type), _esc(j.queue), status(j.status), f"{j.attempt}/{j.max_retries + 1}",
            run_at, _esc(_first_line(getattr(j, "last_error", None) or getattr(j, "error_preview", None) or "")),
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
        rows.append(("error", f"[red]{_esc(job.last_error.strip(), keep_newlines=True)}[/]"))
    for k, v in rows:
        grid.add_row(k, v)
    out.print(grid)
    if checkpoints:
        table = _table("checkpoints", "#", "NAME", "VALUE", "ERROR", keep=("#", "NAME"), flex="VALUE")
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
    table = _table(title, "#", "TIME", "KIND", "JOB", "QUEUE", "DETAIL", keep=("#", "TIME", "JOB"), flex="DETAIL")
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


def overview(
    stats: Sequence[Any], workers: Sequence[Any], schedules: Sequence[Any], unapplied: frozenset[str] = frozenset()
) -> None:
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
    schedules_table(schedules, unapplied)


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


def schedules_table(schedules: Sequence[Any], unapplied: frozenset[str] = frozenset()) -> None:
    """Schedules: job, spec, last and next fire. A next fire in the past is overdue (no scheduler is
    firing it); a config schedule not written yet says so."""
    if not schedules:
        _empty("schedules", "no schedules")
        return
    table = _table("schedules", "NAME", "JOB", "SPEC", "QUEUE", "LAST FIRE", "NEXT FIRE", "PAUSED", keep=("NAME",),
                   flex="LAST FIRE")  # fmt: skip
    now = datetime.now(UTC)
    for s in schedules:
        table.add_row(
            _esc(s.name), _esc(s.job), _esc(s.spec), _esc(s.queue or ""), when(s.last_fire),
            next_fire(s.next_fire, now) + (" [dim](not applied yet)[/]" if s.name in unapplied else ""),
            "[yellow]yes[/]" if s.paused else "",
        )  # fmt: skip
    _show(table)


def next_fire(t: datetime | None, now: datetime) -> str:
    """A schedule's next fire; one in the past reads `overdue by 13m` (its scheduler is not running)."""
    if t is None:
        return ""
    if t < now:
        stamp = t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{stamp} [yellow](overdue by {explain.span((now - t).total_seconds())})[/]"
    return when(t)


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
