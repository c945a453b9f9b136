"""Following the database event log live: `queue.follow_events()`, behind `djobs events --follow`, the
TUI and the dashboard's event stream.

Ids are allocated before commit, so a row with a smaller id may become visible after a larger one (two
writers on PostgreSQL): the follower re-reads a short window behind its cursor and skips what it has seen.
On PostgreSQL a NOTIFY from the event log's trigger wakes it at once; polling stays as a backstop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from djobs.jobs import StoredEvent

if TYPE_CHECKING:
    from djobs.api.events import EventAPI as Queue

#: Ids allocated before a commit may appear late: re-read this many ids behind the cursor.
WINDOW = 200


def follow(
    queue: Queue, cursor: int | None, job_id: str | None, queue_name: str | None, stop: threading.Event, poll: float
) -> Iterator[StoredEvent]:
    if cursor is None:
        cursor = queue.latest_event_id()
    seen = {e.id for e in queue.events_since(max(0, cursor - WINDOW), 10_000, job_id, queue_name) if e.id <= cursor}
    return _follow(queue, cursor, seen, job_id, queue_name, stop, poll)


def _follow(
    queue: Queue,
    cursor: int,
    seen: set[int],
    job_id: str | None,
    queue_name: str | None,
    stop: threading.Event,
    poll: float,
) -> Iterator[StoredEvent]:
    arrived = threading.Event()
    listener = None
    if queue.storage.is_pg:
        from djobs.storage.listen import Listener

        listener = Listener(queue.storage, ("djobs_event",), lambda _channel: arrived.set())
        listener.start()
    try:
        while not stop.is_set():
            arrived.clear()
            fresh = [e for e in queue.events_since(max(0, cursor - WINDOW), 1000, job_id, queue_name) if e.id not in seen]
            for ev in fresh:
                seen.add(ev.id)
                cursor = max(cursor, ev.id)
                yield ev
                if stop.is_set():
                    return
            if len(seen) > 4 * WINDOW:
                seen = {i for i in seen if i > cursor - WINDOW}
            if not fresh:
                if listener is not None:
                    arrived.wait(max(poll, 1.0))
                else:
                    stop.wait(poll)
    finally:
        if listener is not None:
            listener.stop()
