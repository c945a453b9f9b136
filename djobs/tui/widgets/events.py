"""The live event log: lifecycle and custom events read from the database event log, newest at the bottom,
bounded to the last `EVENT_WINDOW` lines."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from rich.text import Text
from textual.widgets import RichLog

from djobs.jobs import StoredEvent

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


def event_line(ev: StoredEvent, now: datetime) -> Text:
    kind = ev.kind
    style = next((s for k, s in KIND_STYLES.items() if k in kind.lower()), "")
    line = Text.assemble((clock_time(ev.timestamp, now), "dim"), " ", (f"{kind:<16}", style), " ")
    if ev.job_id:
        line.append(short_id(ev.job_id), "bold")
        line.append(" ")
    if ev.queue:
        line.append(f"queue={ev.queue} ", "dim")
    if ev.worker_id:
        line.append(f"worker={ev.worker_id} ", "dim")
    # `data` is whatever JSON the writer stored (a custom event may hold a list or a number).
    data = {k: v for k, v in ev.data.items() if v is not None} if isinstance(ev.data, dict) else ev.data
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
            kinds = Counter(ev.kind for ev in hidden)
            detail = ", ".join(f"{n:,} {kind}" for kind, n in kinds.most_common(4))
            total = batch.skipped + len(hidden)
            lines.append(
                Text(f"… {total:,} more events" + (f" ({detail}, …)" if detail else ""), style="dim italic")
            )
        lines += [event_line(ev, now) for ev in events[len(hidden) :]]
        if lines:  # one write: one render for the whole batch
            self.write(Text("\n").join(lines))
