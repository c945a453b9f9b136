"""Lifecycle events and the in-process event bus.

Publishing never blocks a worker: each subscription has a bounded buffer that drops its own oldest events
when full and counts the drops (`sub.dropped`). Lifecycle events are also written to the database event log
by the worker (see `StoredEvent`), which is how other processes follow them.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

log = logging.getLogger("djobs")

if TYPE_CHECKING:
    from djobs.event_types import (  # noqa: F401 - what `__getattr__` below gives, for type checkers
        CheckpointSaved,
        CustomEvent,
        JobCompleted,
        JobEvent,
        JobFailed,
        JobPaused,
        JobResumed,
        JobRetrying,
        JobSleeping,
        JobStarted,
        JobWaitingSignal,
        QueuePaused,
        QueueResumed,
        SignalReceived,
        WorkerPaused,
        WorkerResumed,
        event_kind,
    )

# The event records live in djobs/event_types.py and are made on first use: a process that only enqueues
# (`djobs enqueue`) publishes none of them and skips creating their 16 dataclasses, some milliseconds of its
# start-up. `djobs.events.JobStarted` and `from djobs.events import JobStarted` still work.
_RECORDS = frozenset({
    "JobEvent",
    "JobStarted",
    "JobCompleted",
    "JobFailed",
    "JobRetrying",
    "JobPaused",
    "JobResumed",
    "QueuePaused",
    "QueueResumed",
    "WorkerPaused",
    "WorkerResumed",
    "CheckpointSaved",
    "JobSleeping",
    "JobWaitingSignal",
    "SignalReceived",
    "CustomEvent",
    "event_kind",
})


def __getattr__(name: str) -> Any:
    if name in _RECORDS:
        from djobs import event_types

        return getattr(event_types, name)
    raise AttributeError(f"module 'djobs.events' has no attribute {name!r}")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    timestamp: datetime = field(default_factory=_now, kw_only=True)


class Subscription:
    """An iterable, bounded view of the bus: `for ev in sub`, `sub.get(timeout=)`, `sub.close()`."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._buf: deque[Event] = deque()
        self._maxsize = maxsize
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def _put(self, ev: Event) -> None:
        with self._cond:
            if self._closed:
                return
            if len(self._buf) >= self._maxsize:
                self._buf.popleft()
                self.dropped += 1
            self._buf.append(ev)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None on timeout or once closed and empty."""
        with self._cond:
            if not self._buf and not self._closed:
                self._cond.wait(timeout)
            return self._buf.popleft() if self._buf else None

    def close(self) -> None:
        self._bus.unsubscribe(self)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __iter__(self) -> Iterator[Event]:
        while True:
            ev = self.get(timeout=0.5)
            if ev is not None:
                yield ev
            elif self._closed:
                return

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self, buffer: int = 1000) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._buffer = buffer

    def subscribe(self, buffer: int | None = None) -> Subscription:
        sub = Subscription(self, buffer or self._buffer)
        with self._lock:
            self._subs = [*self._subs, sub]
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subs)

    def publish(self, ev: Event) -> None:
        for sub in self._subs:  # copy-on-write list: no lock on the hot path
            sub._put(ev)


HOOK_KINDS = ("start", "complete", "fail", "retry")


class EventHub:
    """What a queue tells the world: in-process subscribers (the bus), hooks, and run observers (metrics,
    tracing). One object, handed by the Queue to its workers, so a worker never reaches into the queue.

    Hooks and observers run where they are called (the worker calls them on a thread of its own); one that
    raises is logged and never breaks the worker.
    """

    def __init__(self, buffer: int = 1000) -> None:
        self.bus = EventBus(buffer)
        self._hooks: dict[str, list[Callable[..., Any]]] = {k: [] for k in HOOK_KINDS}

    def add_hook(self, kind: str, fn: Callable[..., Any]) -> None:
        self._hooks[kind] = [*self._hooks[kind], fn]

    def hooks(self, kind: str) -> list[Callable[..., Any]]:
        return self._hooks[kind]

    @property
    def has_hooks(self) -> bool:
        return any(self._hooks.values())

    @property
    def listening(self) -> bool:
        """Anyone to tell in this process (subscribers or hooks): else the worker skips building events."""
        return self.bus.has_subscribers or self.has_hooks

    def publish(self, ev: Event) -> None:
        self.bus.publish(ev)

    def call_hooks(self, kind: str, *args: Any) -> None:
        for fn in self._hooks[kind]:
            try:
                fn(*args)
            except Exception:
                log.exception("djobs: %s hook %r raised; ignored", kind, fn)
