"""The dashboard's reader threads: every database read of the app runs on one of two long-lived threads.

    reads = Reads(queue)                      # started before Textual is imported (see `make_app`)
    future = reads.main.submit(poller.snapshot, JobFilter())
    snapshot = await asyncio.wrap_future(future)

`main` makes the cheap reads (the main screen's snapshot, the detail screen) one after another on one
database connection, kept for the life of the app (Textual's thread workers would spread them over the
event loop's shared executor, up to six threads and six connections).
`counts` makes the per-queue counts, whose cost grows with the table (about 0.1 s for 200,000 jobs), so
a slow count never holds back the jobs table, and the first frame does not wait for it. Both threads are
daemons: a read stuck on a database that went away cannot keep the terminal from closing.
"""

from __future__ import annotations

import queue as queues
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from .data import JobFilter, Poller, close_connection

if TYPE_CHECKING:
    import djobs

T = TypeVar("T")

_STOP = object()


class Reader:
    """A daemon thread running submitted reads in order; what they raise reaches the caller's future (the
    library has already thrown away a connection that failed)."""

    def __init__(self, queue: djobs.Queue, name: str) -> None:
        self.queue = queue
        self._jobs: queues.SimpleQueue[Any] = queues.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((future, fn, args))
        return future

    def close(self) -> None:
        """Stop after the read in progress; the thread closes its connection on the way out."""
        self._jobs.put(_STOP)

    def _run(self) -> None:
        while (item := self._jobs.get()) is not _STOP:
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            else:
                future.set_result(result)
        close_connection(self.queue)  # not left counted as in use by the pool


class Reads:
    """The app's two readers: `main` for everything cheap, `counts` for the per-queue counts."""

    def __init__(self, queue: djobs.Queue) -> None:
        self.main = Reader(queue, "djobs-tui-reads")
        self.counts = Reader(queue, "djobs-tui-counts")

    def close(self) -> None:
        self.main.close()
        self.counts.close()


class Start:
    """The readers of one app and its first reads, started at once: `make_app` builds this before it
    imports Textual, so the database work overlaps the UI's start-up."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self.reads = Reads(poller.queue)
        self.counts = self.reads.counts.submit(poller.counts)  # the slow one first
        self.snapshot = self.reads.main.submit(poller.snapshot, JobFilter())
