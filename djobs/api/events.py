"""Events and hooks: in-process subscribers, the database event log every process can follow, hooks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from djobs import validate
from djobs.api.base import QueueBase
from djobs.events import Event, Subscription
from djobs.jobs import Job
from djobs.registry import encode_args

if TYPE_CHECKING:
    from djobs.info import StoredEvent


class EventAPI(QueueBase):
    # -- events ------------------------------------------------------------------------------------------
    def events(self, buffer: int | None = None) -> Subscription:
        """Subscribe to this process's events (bounded; drops the oldest when full, counting drops)."""
        return self.hub.bus.subscribe(buffer)

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()

    def emit(self, event: Event) -> None:
        self.hub.publish(event)

    def emit_custom(self, job_id: str | None, kind: str, data: Any = None, persist: bool = False) -> None:
        validate.name("event kind", kind)
        from djobs.event_types import CustomEvent

        self.hub.publish(CustomEvent(job_id=job_id, kind=kind, data=data))
        if persist:
            self.storage.insert_events([(f"custom:{kind}", job_id, None, None, encode_args(data, "event data"))])

    def latest_event_id(self) -> int:
        return self.storage.latest_event_id()

    def events_since(
        self,
        cursor: int = 0,
        limit: int = 100,
        job_id: str | None = None,
        queue: str | None = None,
        since: datetime | None = None,
    ) -> list[StoredEvent]:
        """Events from the database log with id > cursor, oldest first."""
        return self.storage.events_since(cursor, limit, job_id, queue, None if since is None else since.timestamp())

    def follow_events(
        self,
        cursor: int | None = None,
        job_id: str | None = None,
        queue: str | None = None,
        stop: threading.Event | None = None,
        poll: float = 0.1,
    ) -> Iterator[StoredEvent]:
        """Yield events as they are written (by any process) until `stop` is set. cursor=None starts at
        the newest event as of this call (not of the first `next()`), so nothing written after the call
        is missed."""
        from djobs.follow import follow

        return follow(self, cursor, job_id, queue, stop or threading.Event(), poll)

    # -- hooks ---------------------------------------------------------------------------------------------
    def on_job_start(self, fn: Callable[[Job], Any]) -> Callable[[Job], Any]:
        self.hub.add_hook("start", fn)
        return fn

    def on_job_complete(self, fn: Callable[[Job, Any], Any]) -> Callable[[Job, Any], Any]:
        self.hub.add_hook("complete", fn)
        return fn

    def on_job_fail(self, fn: Callable[[Job, BaseException], Any]) -> Callable[[Job, BaseException], Any]:
        self.hub.add_hook("fail", fn)
        return fn

    def on_retry(self, fn: Callable[[Job, int, BaseException], Any]) -> Callable[[Job, int, BaseException], Any]:
        self.hub.add_hook("retry", fn)
        return fn
