"""The live event log: lifecycle and custom events read from the database event log, newest at the bottom,
bounded to the last `EVENT_WINDOW` lines."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.widgets import RichLog

from ..data import EVENT_WINDOW, EventBatch
from ..format import clock_time, one_line, short_id

KIND_STYLES = {
    "started": "yellow",
    "completed": "green",
    "failed": "bold red",
    "retrying": "magenta",
    "paused": "dark_orange",
    "resumed": "cyan",
    "cancelled": "bright_black",
    "checkpoint": "blue",
}


def event_kind(ev: Any) -> str:
    for attr in ("kind", "type", "event", "name"):
        value = getattr(ev, attr, None)
        if value:
            return str(getattr(value, "value", value))
    return type(ev).__name__


def event_line(ev: Any, now: datetime) -> Text:
    kind = event_kind(ev)
    style = next((s for k, s in KIND_STYLES.items() if k in kind.lower()), "")
    line = Text.assemble(
        (clock_time(getattr(ev, "timestamp", None), now), "dim"), " ", (f"{kind:<16}", style), " "
    )
    job_id = getattr(ev, "job_id", None)
    if job_id:
        line.append(short_id(job_id), "bold")
        line.append(" ")
    for attr in ("job_type", "queue", "worker_id"):
        value = getattr(ev, attr, None)
        if value:
            line.append(f"{attr.removesuffix('_id')}={value} ", "dim")
    data = getattr(ev, "data", None)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if v is not None}
    if data:
        line.append(one_line(data, 80))
    return line


#: Lines written per refresh. Each line costs a render, and nobody reads two thousand lines a second: when
#: more events arrive, the log writes one summary line counting the rest by kind, then the newest ones.
LINES_PER_REFRESH = 8


class EventLog(RichLog):
    BORDER_TITLE = "events"

    def __init__(self) -> None:
        super().__init__(id="events", max_lines=EVENT_WINDOW, wrap=False, markup=False, auto_scroll=True)

    def add(self, batch: EventBatch, now: datetime) -> None:
        events = batch.events
        hidden = events[:-LINES_PER_REFRESH] if len(events) > LINES_PER_REFRESH else []
        lines: list[Text] = []
        if batch.skipped or hidden:
            kinds = Counter(event_kind(ev) for ev in hidden)
            detail = ", ".join(f"{n:,} {kind}" for kind, n in kinds.most_common(4))
            total = batch.skipped + len(hidden)
            lines.append(
                Text(f"… {total:,} more events" + (f" ({detail}, …)" if detail else ""), style="dim italic")
            )
        lines += [event_line(ev, now) for ev in events[len(hidden) :]]
        if lines:  # one write: one render for the whole batch
            self.write(Text("\n").join(lines))
