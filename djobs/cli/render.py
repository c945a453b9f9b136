"""Human output for the CLI: tables, a job's detail, reasons and event lines (the `--json` path is
`common.print_json`).

Drawn by `djobs/cli/textout.py`, not rich: commands must start quickly. Colours only on a terminal; in a
pipe (or with `--wide`) nothing is cut. Times are shown in UTC with a relative hint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from djobs import explain
from djobs.cli import textout

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


def console() -> textout.Output:
    """Standard output: as wide as the terminal, or unlimited (nothing cut) with `--wide` or when stdout is
    a pipe or a file, where a reader wants whole values, not `Q…`."""
    from djobs.cli import common

    return textout.Output.stdout(wide=common.WIDE)


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
    return f"[{style}]{_esc(text)}[/]" if style else _esc(text)


def short_json(v: Any, width: int = 60) -> str:
    """A JSON value squeezed onto one line."""
    from djobs.cli.common import to_jsonable

    text = json.dumps(to_jsonable(v), separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def _esc(text: Any, keep_newlines: bool = False) -> str:
    """Stored text as markup: control characters escaped (`common.printable`), brackets literal."""
    from djobs.cli.common import printable

    return textout.escape(printable(str(text), keep_newlines))


def _table(
    title: str | None, *columns: str, keep: tuple[str, ...] = ("ID",), fold: tuple[str, ...] = (), flex: str | None = None
) -> textout.Table:
    """A compact table: `keep` columns are never cut (ids must stay copyable), `fold` columns wrap, the
    others are cut with an ellipsis on a narrow terminal, `flex` first. `inspect ID` shows every value
    whole; so does any table with `--wide` or in a pipe."""
    return textout.Table(title, list(columns), keep=keep, fold=fold, flex=flex)


def _show(table: textout.Table) -> None:
    console().table(table)


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
    out = console()
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
    wait = getattr(job, "wait_kind", None)
    if wait == "sleep" or (wait == "signal" and getattr(job, "wait_signal", None)):
        rows.append(("waits for", "its sleep to end" if wait == "sleep" else _esc(f"signal {job.wait_signal!r}")))
    if getattr(job, "progress", None) is not None:
        rows.append(("progress", _esc(short_json(job.progress, 100))))
    rows.append(("args", _esc(short_json(job.args, 200))))
    if value(job.status) == "completed":
        rows.append(("result", _esc(short_json(job.result, 200))))
    if job.last_error:
        rows.append(("error", f"[red]{_esc(job.last_error.strip(), keep_newlines=True)}[/]"))
    if getattr(job, "last_traceback", None):
        rows.append(("traceback", _esc(traceback_tail(job.last_traceback), keep_newlines=True)))
    _grid(out, rows)
    if checkpoints:
        table = _table("checkpoints", "#", "NAME", "VALUE", "ERROR", keep=("#", "NAME"), flex="VALUE")
        for c in checkpoints:
            idx = "" if c.call_index is None else str(c.call_index)
            table.add_row(idx, _esc(c.name), _esc(short_json(c.value)), _esc(c.error or ""))
        out.print()
        out.table(table)
    if subs:
        out.print()
        jobs_table(subs, title="sub-jobs")
    if events:
        out.print()
        events_table(events, title="recent events")


#: `inspect ID` shows the end of the last failed attempt's traceback (where it failed); --json has all of it.
TRACEBACK_LINES = 40


def traceback_tail(text: str) -> str:
    lines = text.rstrip().splitlines()
    if len(lines) <= TRACEBACK_LINES:
        return "\n".join(lines)
    return "\n".join([f"… {len(lines) - TRACEBACK_LINES} lines before (--json shows them)", *lines[-TRACEBACK_LINES:]])


def _grid(out: textout.Output, rows: Sequence[tuple[str, str]]) -> None:
    """Key-value lines: bold keys in a column, values folded to the width left (and at their newlines)."""
    keys = max(len(k) for k, _ in rows)
    room = max(20, out.width - keys - textout.GAP)
    lines: list[list[textout.Segment]] = []
    for key, markup in rows:
        pad = [(" " * (keys - len(key) + textout.GAP), "")]
        first = True
        for part in markup.split("\n"):
            for chunk in textout.wrap(textout.parse(part), room) or [[]]:
                lead = [(key, "bold"), *pad] if first else [(" " * (keys + textout.GAP), "")]
                lines.append([*lead, *chunk] if chunk else lead[:1])
                first = False
    out.lines(lines)


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


def limits_table(rows: Sequence[dict[str, Any]]) -> None:
    """Fleet-wide limits per queue (`-`: none) and how many due jobs each limit holds back now."""
    if not rows:
        _empty("limits", "no queue has limits")
        return
    table = _table("limits", "QUEUE", "RATE", "RUNNING", "KEY RATE", "KEY RUNNING", "HELD BACK", keep=("QUEUE",),
                   fold=("HELD BACK",))  # fmt: skip
    for r in rows:
        held = ", ".join(f"{n} by {k.replace('_', ' ')}" for k, n in r["held_back"].items() if n)
        cells = ["-" if r[k] is None else str(r[k]) for k in ("rate", "running", "key_rate", "key_running")]
        table.add_row(_esc(r["queue"]), *cells, _esc(held))
    _show(table)


def dead_letters_table(jobs: Sequence[Any]) -> None:
    """Failed jobs, newest failure first, with the last line of their error."""
    if not jobs:
        _empty("dead letters", "no failed jobs")
        return
    table = _table("dead letters", "ID", "TYPE", "QUEUE", "FAILED", "TRIES", "ERROR", flex="ERROR")
    for j in jobs:
        table.add_row(
            _esc(j.id), _esc(j.type), _esc(j.queue), ago(j.completed_at), str(j.attempt),
            _esc(_first_line(j.last_error or "")),
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
    """A spinner on stderr while the block runs (only on a terminal; rich is loaded only then)."""
    import sys

    if not enabled or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.markup import escape

    from djobs.cli.common import printable

    with Console(file=sys.stderr, highlight=False).status(escape(printable(text))):
        yield


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= 80 else line[:79] + "…"
