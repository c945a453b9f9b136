"""Live events for open pages: server-sent events fed by one reader of the database event log.

The log is written by every process (workers, the CLI, other dashboards), so a page sees what happens
anywhere, not only in this process. One follower thread per dashboard reads it (`queue.follow_events`,
woken by NOTIFY on PostgreSQL) while at least one page listens, and hands each event to every open stream
through a bounded ring; so a hundred open tabs cost the database what one does. The follower stops when
the last stream closes.

Each stream holds a server thread, so they are bounded (`max_streams`; past it the answer is 503 and the
page polls instead), live at most `STREAM_LIFETIME` (the browser reconnects on its own, sending the last
event id it saw, and the gap is read back from the log), and send a comment line every `HEARTBEAT` seconds
so proxies keep the connection open and a vanished client is noticed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import djobs
from djobs.codec import jsonable
from djobs.ui.http import SECURITY_HEADERS, HTTPError, Request, Response

if TYPE_CHECKING:
    from djobs.queue import Queue
    from djobs.ui.app import Dashboard

log = logging.getLogger("djobs.ui")

HEARTBEAT = 15.0
STREAM_LIFETIME = 300.0
RING = 2000
#: Events read back from the log for a stream that reconnects; a longer gap tells the page to reload.
REPLAY = 500
RETRY_MS = 3000


class EventHub:
    """Fans the event log out to open streams (see the module docstring)."""

    def __init__(self, queue: Callable[[], Queue], max_streams: int = 8) -> None:
        self._queue = queue
        self.max_streams = max_streams
        self._cond = threading.Condition()
        self._ring: deque[tuple[int, Any]] = deque(maxlen=RING)  # (sequence number, StoredEvent)
        self._seq = 0
        self._streams = 0
        self._run_stop: threading.Event | None = None
        self._start_at = 0
        self._thread: threading.Thread | None = None
        self._following = False
        self._closed = threading.Event()
        self.error: str | None = None

    @property
    def streams(self) -> int:
        return self._streams

    def open(self, start: int) -> int | None:
        """Register a stream; its starting position, or None when `max_streams` are open already. A
        follower started now reads from event id `start` (read by the caller before it asked), so an event
        written while the follower starts up is not missed."""
        with self._cond:
            if self._closed.is_set() or self._streams >= self.max_streams:
                return None
            self._streams += 1
            if self._run_stop is None or self._run_stop.is_set():
                self._run_stop = threading.Event()
                self._start_at = start
            if self._thread is None:
                # One thread for the dashboard's life, parked while nobody listens: a thread per listening
                # spell would hold a database connection of its own each time.
                self._thread = threading.Thread(target=self._main, name="djobs-ui-events", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return self._seq

    @property
    def following(self) -> bool:
        """Whether the log is being read (someone listens)."""
        return self._following

    def published_after(self, event_id: int, position: int) -> list[Any]:
        """Events the follower handed out up to `position` whose id is above `event_id`: what a stream that
        read `event_id` as the newest, then joined a running follower, would otherwise miss."""
        with self._cond:
            return [ev for seq, ev in self._ring if seq <= position and ev.id > event_id]

    def release(self) -> None:
        with self._cond:
            self._streams -= 1
            if self._streams <= 0 and self._run_stop is not None:
                self._run_stop.set()  # nobody listens: stop reading the log

    def wait(self, position: int, timeout: float) -> tuple[list[Any], int, bool]:
        """(events after `position`, the new position, whether some were lost because the stream fell a
        whole ring behind). Waits up to `timeout` for something new."""
        with self._cond:
            if self._seq == position and not self._closed.is_set():
                self._cond.wait(timeout)
            if self._seq == position:
                return [], position, False
            oldest = self._ring[0][0] if self._ring else self._seq + 1
            lost = position + 1 < oldest
            events = [ev for seq, ev in self._ring if seq > position]
            return events, self._seq, lost

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """End every stream and the follower (the dashboard is going away)."""
        self._closed.set()
        with self._cond:
            if self._run_stop is not None:
                self._run_stop.set()
            self._cond.notify_all()

    def _publish(self, events: list[Any]) -> None:
        with self._cond:
            for ev in events:
                self._seq += 1
                self._ring.append((self._seq, ev))
            self.error = None
            self._cond.notify_all()

    def _main(self) -> None:
        while True:
            with self._cond:
                while self._streams <= 0 and not self._closed.is_set():
                    self._cond.wait()
                if self._closed.is_set() or self._run_stop is None:
                    return
                stop, cursor = self._run_stop, self._start_at
                self._following = True
            try:
                self._follow(stop, cursor)
            finally:
                self._following = False

    def _follow(self, stop: threading.Event, cursor: int) -> None:
        """Read the log until nobody listens (`stop`); ride out database outages."""
        pause = 0.5
        while not stop.is_set():
            try:
                for ev in self._queue().follow_events(cursor=cursor, stop=stop, poll=0.25):
                    cursor = max(cursor, ev.id)
                    self._publish([ev])
                    pause = 0.5
                return
            except djobs.StorageUnavailable as exc:
                self.error = str(exc)
            except Exception as exc:  # never let the live feed die on one bad row or a bug
                log.exception("djobs.ui: reading the event log failed; retrying")
                self.error = f"{type(exc).__name__}: {exc}"
            with self._cond:
                self._cond.notify_all()
            stop.wait(pause)
            pause = min(10.0, pause * 2)


class _Recent:
    """The last `size` event ids a stream sent: a replayed event that the live feed also carries (or a
    follower restart repeats) is sent once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.ids: set[int] = set()
        self.order: deque[int] = deque()

    def add(self, event_id: int) -> bool:
        """True when the id is new (and remember it)."""
        if event_id in self.ids:
            return False
        self.ids.add(event_id)
        self.order.append(event_id)
        if len(self.order) > self.size:
            self.ids.discard(self.order.popleft())
        return True


def _frame(ev: Any) -> bytes:
    data = json.dumps(jsonable(ev), ensure_ascii=True, separators=(",", ":"))
    return f"id: {int(ev.id)}\nevent: job-event\ndata: {data}\n\n".encode("ascii")


def _wanted(ev: Any, job_id: str | None, queue: str | None) -> bool:
    return (job_id is None or ev.job_id == job_id) and (queue is None or ev.queue == queue)


def stream(d: Dashboard, req: Request) -> Response:
    """GET api/stream[?queue=Q][&job_id=ID]: `text/event-stream` of the event log from now on (or from
    the `Last-Event-ID` the browser sends when it reconnects)."""
    job_id, queue_name = req.name_arg("job_id"), req.name_arg("queue")
    last_text = req.header("Last-Event-ID") or req.arg("after")
    last_id: int | None = None
    if last_text is not None:
        if not last_text.isdigit() or len(last_text) > 18:
            raise HTTPError(400, "Last-Event-ID must be an event id")
        last_id = int(last_text)
    hub = d.hub
    if hub.streams >= hub.max_streams:  # checked again by open(): this only spares the read below
        raise _full(hub)
    if last_id is None:
        latest = d.db(lambda: d.queue.latest_event_id())
        replay: list[Any] = []
    else:
        latest = last_id
        replay = d.db(lambda: d.queue.events_since(last_id, limit=REPLAY + 1, job_id=job_id, queue=queue_name))
    position = hub.open(start=latest)
    if position is None:
        raise _full(hub)
    replay += hub.published_after(latest, position)
    disconnected = req.environ.get("waitress.client_disconnected")
    headers = [
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("X-Accel-Buffering", "no"),  # nginx: pass events through as they come
        *SECURITY_HEADERS,
    ]
    return 200, headers, _Stream(hub, position, replay, job_id, queue_name, disconnected)


def _full(hub: EventHub) -> HTTPError:
    return HTTPError(
        503, f"all {hub.max_streams} live streams are in use; poll api/events instead", [("Retry-After", "30")]
    )


class _Stream:
    """The response body of one stream: an iterator with `close()`, which every WSGI server calls when the
    response ends or the client goes away, so the stream's slot is always given back."""

    def __init__(
        self, hub: EventHub, position: int, replay: list[Any], job_id: str | None, queue: str | None,
        disconnected: Callable[[], bool] | None,
    ) -> None:  # fmt: skip
        self._released = False
        self.hub = hub
        self._iter = self._run(position, replay, job_id, queue, disconnected)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._iter)

    def close(self) -> None:
        self._iter.close()
        if not self._released:
            self._released = True
            self.hub.release()

    def _run(
        self, position: int, replay: list[Any], job_id: str | None, queue: str | None,
        disconnected: Callable[[], bool] | None,
    ) -> Generator[bytes, None, None]:  # fmt: skip
        hub = self.hub
        yield f"retry: {RETRY_MS}\n: djobs live events\n\n".encode("ascii")
        sent = _Recent(RING)
        if len(replay) > REPLAY:
            yield b"event: reset\ndata: {}\n\n"  # too much missed: the page reloads its lists
            replay = replay[-REPLAY:]
        for ev in replay:
            sent.add(ev.id)
            yield _frame(ev)
        ends = time.monotonic() + STREAM_LIFETIME
        beat = time.monotonic() + HEARTBEAT
        reported: str | None = None
        while not hub.closed and time.monotonic() < ends:
            if disconnected is not None and disconnected():
                return
            events, position, lost = hub.wait(position, timeout=1.0)
            if lost:
                yield b"event: reset\ndata: {}\n\n"
            if hub.error != reported:
                reported = hub.error
                payload = json.dumps({"error": reported}, ensure_ascii=True)
                yield f"event: status\ndata: {payload}\n\n".encode("ascii")
            frames = [_frame(ev) for ev in events if sent.add(ev.id) and _wanted(ev, job_id, queue)]
            if frames:
                yield b"".join(frames)
                beat = time.monotonic() + HEARTBEAT
            elif time.monotonic() >= beat:
                yield b": ping\n\n"  # a write to a vanished client fails: the stream ends and its slot frees
                beat = time.monotonic() + HEARTBEAT
