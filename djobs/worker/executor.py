"""The executor: runs claimed jobs in slots and turns each ending into exactly one outcome.

A sync slot is a thread that, when its job ends, takes the next ready job of its queue itself: short jobs
run back to back while the dispatcher is in a database round trip. Async handlers run on one asyncio loop
thread. `executing[queue]` counts busy slots; it changes under `lock`.

A slot is never lost to a handler. At a job's deadline (its time limit) the handler is told (`ctx.cancelled`,
asyncio cancellation), its outcome (JobTimeout) is recorded and the slot is free at once; if a sync handler
ignores the cancellation its thread is abandoned (it cannot be killed) and a new thread serves the slot.
A job taken away from this worker (cancelled, paused, recovered elsewhere) gets a short grace to unwind,
then its slot is freed the same way. Whatever an abandoned handler returns later is dropped: each claim
ends in exactly one outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from djobs import tracing
from djobs.context import Context, _current
from djobs.durable import invoke
from djobs.errors import JobCancelled, JobTimeout
from djobs.outcomes import Claim
from djobs.worker.classify import Ended, classify

if TYPE_CHECKING:
    from djobs.jobs import Job
    from djobs.queue import Queue
    from djobs.registry import Handler

log = logging.getLogger("djobs.worker")

#: A job taken from this worker gets this long to unwind before its slot is freed without it.
CANCEL_GRACE = 2.0
#: An idle slot thread waits this long for new work before it exits.
IDLE_THREAD_SECONDS = 30.0


@dataclass(eq=False)
class Running:
    """One claim, from the moment it is accepted until its outcome is written."""

    job: Job
    handler: Handler
    fanout_id: str | None
    held: bool = False  # claimed as prefetch: the database is told when it starts
    cancel: threading.Event = field(default_factory=threading.Event)
    task: Any = None  # asyncio.Task for async handlers
    loop: asyncio.AbstractEventLoop | None = None
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None  # monotonic time of its time limit
    cancelled_at: float | None = None  # when it was taken away (cancel, pause, lost)
    timed_out: bool = False
    ended: bool = False  # its one outcome is queued
    abandoned: bool = False  # its slot was freed while the handler still ran
    trace: str | None = None  # the enqueuer's trace context, and the attempt's span (tracing)
    span: Any = None
    returned: bool = False  # the handler itself has returned or raised

    @property
    def key(self) -> tuple[str, int]:
        return (self.job.id, self.job.attempt)


class _SlotThreads:
    """Threads for one queue's sync slots, started on demand; an idle thread waits for its next job.

    An idle thread sleeps on a gate: a bare lock it holds and the dispatcher releases when it hands over a job
    (one wake-up; an Event's wait and set each go through a Condition with its own lock and waiter list, a
    measurable share of a no-op job's cost)."""

    def __init__(self, name: str, run: Callable[[Running], None]) -> None:
        self.name = name
        self._run = run
        self._idle: list[tuple[threading.Lock, list[Running | None]]] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, entry: Running) -> None:
        with self._lock:
            if self._idle:
                gate, box = self._idle.pop()
                box[0] = entry
                gate.release()
                return
        threading.Thread(target=self._main, args=(entry,), name=f"djobs-{self.name}", daemon=True).start()

    def _main(self, entry: Running | None) -> None:
        while entry is not None:
            self._run(entry)
            gate = threading.Lock()
            gate.acquire()
            box: list[Running | None] = [None]
            with self._lock:
                if self._closed:
                    return
                self._idle.append((gate, box))
            if not gate.acquire(timeout=IDLE_THREAD_SECONDS):
                with self._lock:
                    if (gate, box) in self._idle:
                        self._idle.remove((gate, box))
                        return
                gate.acquire()  # handed a job just as we timed out: its gate is open by now
            entry = box[0]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for gate, _ in self._idle:
                gate.release()
            self._idle.clear()


class Executor:
    """Slots per queue, ready lines, running claims, and the endings waiting for the dispatcher."""

    def __init__(
        self,
        queue: Queue,
        worker_id: str,
        queues: dict[str, int],
        on_ended: Callable[[Ended], None],
        on_start: Callable[[Job], None],
        default_timeout: float | None = None,
        queue_timeouts: dict[str, float] | None = None,
    ) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.queues = queues
        self.default_timeout = default_timeout
        self.queue_timeouts = dict(queue_timeouts or {})
        self._on_ended = on_ended
        self._on_start = on_start
        self.lock = threading.Lock()
        self.running: dict[tuple[str, int], Running] = {}  # by (job id, attempt): one entry per claim
        self.ready: dict[str, deque[Running]] = {q: deque() for q in queues}
        self.executing: dict[str, int] = dict.fromkeys(queues, 0)
        #: Prefetched claims started since the last round: (job id, attempt, monotonic start).
        self.started_held: deque[tuple[str, int, float]] = deque()
        self.avg_ms: dict[str, float] = {}
        #: Handlers still running although their slot was freed (time limit, taken away, drain timeout).
        self.abandoned = 0
        self.blocked = False  # paused or stopping: ready jobs are not started
        self._slots = {name: _SlotThreads(name, self._run_slot) for name in queues}
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- accepting and launching -------------------------------------------------------------------------
    def accept(self, claim: Claim, held: bool, front: bool = False) -> None:
        """A claimed job waits in its queue's ready line until a slot is free (at once, unless prefetched)."""
        job = claim.job
        entry = Running(job=job, handler=self.queue.get_handler(job.type), fanout_id=claim.fanout_id, held=held,
                        trace=claim.trace)  # fmt: skip
        with self.lock:
            line = self.ready.setdefault(job.queue, deque())
            line.appendleft(entry) if front else line.append(entry)

    def launch_ready(self) -> None:
        if self.blocked:
            return  # a pause landed while a claim was in flight: these jobs are released, never run
        for name, line in self.ready.items():
            conc = self.queues.get(name, 0)
            while True:
                with self.lock:
                    if not line or self.executing.get(name, 0) >= conc:
                        break
                    entry = line.popleft()
                    if entry.cancel.is_set():  # taken from us before it started: never run it
                        continue
                    self.executing[name] = self.executing.get(name, 0) + 1
                    self._register(entry)
                self._launch(entry)

    def _register(self, entry: Running) -> None:
        entry.started = time.monotonic()
        limit = self.limit(entry)
        entry.deadline = entry.started + limit if limit else None
        self.running[entry.key] = entry
        if entry.held:
            self.started_held.append((entry.job.id, entry.job.attempt, entry.started))

    def _next_ready(self, name: str) -> Running | None:
        """For a slot whose job just ended: the next ready job, or None (and the slot goes idle)."""
        with self.lock:
            line = self.ready.get(name)
            while line and not self.blocked:
                entry = line.popleft()
                if not entry.cancel.is_set():
                    self._register(entry)
                    return entry
            self.executing[name] = max(0, self.executing.get(name, 1) - 1)
        return None

    def take_ready(self) -> list[Running]:
        """Every claim waiting in a ready line (to be released: paused or stopping)."""
        out: list[Running] = []
        with self.lock:
            for line in self.ready.values():
                while line:
                    out.append(line.popleft())
        return out

    def _launch(self, entry: Running) -> None:
        self._on_start(entry.job)
        if entry.handler.is_async:
            loop = self._ensure_loop()
            entry.loop = loop
            asyncio.run_coroutine_threadsafe(self._execute_async(entry), loop)
        else:
            self._slots[entry.job.queue].submit(entry)

    def _run_slot(self, entry: Running) -> None:
        cur: Running | None = entry
        while cur is not None:
            with tracing.running(cur, self.worker_id) if tracing.on else tracing.OFF:
                self._execute_sync(cur)
            if cur.abandoned:
                return  # its slot was given to another thread at the deadline: this thread is done
            cur = self._next_ready(cur.job.queue)
            if cur is not None:
                if cur.handler.is_async:  # an async job goes to the loop; the slot stays counted for it
                    self._launch(cur)
                    return
                self._on_start(cur.job)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def runner() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=runner, name="djobs-asyncio", daemon=True).start()
            ready.wait()
            self._loop = loop
        return self._loop

    # -- running handlers --------------------------------------------------------------------------------
    def _context(self, entry: Running) -> Context:
        return Context(self.queue, entry.job, self.worker_id, entry.cancel)

    def _execute_sync(self, entry: Running) -> None:
        try:
            args = entry.handler.decode(entry.job.args)
        except TypeError as exc:
            self._end(entry, exc=exc, bad_args=True)
            return
        try:
            value = invoke(entry.handler, self._context(entry), args)
        except BaseException as exc:
            self._returned(entry)
            self._end(entry, exc=exc)
            return
        self._returned(entry)
        self._end(entry, value=value)

    async def _execute_async(self, entry: Running) -> None:
        entry.task = asyncio.current_task()
        if tracing.on:
            tracing.start_run(entry, self.worker_id)  # current in this task's own context: no detach needed
        try:
            try:
                args = entry.handler.decode(entry.job.args)
            except TypeError as exc:
                self._end(entry, exc=exc, bad_args=True)
                return
            ctx = self._context(entry)
            token = _current.set(ctx)
            try:
                h = entry.handler
                params = (ctx, args) if h.wants_ctx else (args,) if h.takes_args else ()
                value = await h.fn(*params)
            except BaseException as exc:
                self._returned(entry)
                self._end(entry, exc=exc)
                return
            finally:
                _current.reset(token)
            self._returned(entry)
            self._end(entry, value=value)
        finally:
            if not entry.abandoned:
                with self.lock:
                    self.executing[entry.job.queue] = max(0, self.executing.get(entry.job.queue, 1) - 1)

    def _returned(self, entry: Running) -> None:
        """The handler came back: an abandoned one no longer counts as still running."""
        with self.lock:
            entry.returned = True
            if entry.abandoned:
                self.abandoned -= 1

    def _end(self, entry: Running, value: Any = None, exc: BaseException | None = None, bad_args: bool = False) -> None:
        """Queue the claim's one outcome; a later ending of the same claim (an abandoned handler) is dropped."""
        with self.lock:
            if entry.ended:
                return
            entry.ended = True
        if entry.timed_out and exc is not None:
            exc = self._timeout_error(entry)
        try:
            ended = classify(entry.job, entry.handler, value, exc, bad_args, entry.cancel.is_set(), self.worker_id)
        except BaseException as err:
            # Whatever the handler handed back broke its recording: that is the attempt's failure (spending
            # an attempt), never a release, which would run it again up to MAX_REFUNDS times.
            log.exception("job %s: could not record its outcome", entry.job.id)
            problem = RuntimeError(f"the handler's outcome could not be recorded ({type(err).__name__})")
            ended = classify(entry.job, entry.handler, None, problem, False, False, self.worker_id)
        ended.entry = entry
        if entry.span is not None:
            tracing.end_run(entry, ended.label, exc)
        self._on_ended(ended)

    def limit(self, entry: Running) -> float | None:
        """The attempt's time limit: the job's own, else its handler's, else its queue's, else this worker's
        default."""
        queue_default = self.queue_timeouts.get(entry.job.queue)
        for value in (entry.job.timeout, entry.handler.options.timeout, queue_default, self.default_timeout):
            if value is not None:
                return value
        return None

    def _timeout_error(self, entry: Running) -> JobTimeout:
        return JobTimeout(f"job {entry.job.id} ran past its time limit of {self.limit(entry) or 0:g}s")

    # -- cancellation, time limits, freeing slots ------------------------------------------------------------
    def cancel(self, entry: Running) -> None:
        """Tell a running handler to stop (ctx.cancelled; asyncio cancellation)."""
        if entry.cancelled_at is None:
            entry.cancelled_at = time.monotonic()
        entry.cancel.set()
        if entry.task is not None and entry.loop is not None:
            entry.loop.call_soon_threadsafe(entry.task.cancel)

    def next_deadline(self) -> float | None:
        """The soonest monotonic time `enforce()` has something to do, or None."""
        soonest: float | None = None
        for e in list(self.running.values()):
            if e.ended:
                continue
            for t in (e.deadline, None if e.cancelled_at is None else e.cancelled_at + CANCEL_GRACE):
                if t is not None and (soonest is None or t < soonest):
                    soonest = t
        return soonest

    def enforce(self, now: float | None = None) -> int:
        """Past its deadline: record JobTimeout and free the slot. Taken away and still running after the
        grace: free the slot (its ending, if any, is dropped). Returns how many slots were freed."""
        now = time.monotonic() if now is None else now
        freed = 0
        for entry in list(self.running.values()):
            if entry.ended or entry.abandoned:
                continue
            if entry.deadline is not None and now >= entry.deadline:
                entry.timed_out = True
                self.cancel(entry)
                self._end(entry, exc=self._timeout_error(entry))
                freed += self._abandon(entry)
            elif entry.cancelled_at is not None and now >= entry.cancelled_at + CANCEL_GRACE:
                log.warning("job %s (%s) ignored its cancellation for %.0fs; freeing its slot", entry.job.id,
                            entry.job.type, CANCEL_GRACE)  # fmt: skip
                self._end(entry, exc=JobCancelled(f"job {entry.job.id} was taken from this worker"))
                freed += self._abandon(entry)
        if freed:
            self.launch_ready()
        return freed

    def _abandon(self, entry: Running) -> int:
        """Free the slot of a handler that has not returned; a new thread serves the slot from now on."""
        with self.lock:
            if entry.abandoned:
                return 0
            entry.abandoned = True
            if not entry.returned:
                self.abandoned += 1
            self.executing[entry.job.queue] = max(0, self.executing.get(entry.job.queue, 1) - 1)
        return 1

    def close(self) -> None:
        for slots in self._slots.values():
            slots.close()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    def settle_async(self, entries: list[Running], timeout: float = 2.0) -> None:
        """Give cancelled handlers a moment to run their except/finally before the process may exit: async
        ones until their tasks end, sync ones until they return (a cooperative handler sees `ctx.cancelled`
        within its next look); whatever ignores the cancellation is left behind after `timeout`."""
        deadline = time.monotonic() + timeout
        self._settle_tasks([e.task for e in entries if e.task is not None], timeout)
        while time.monotonic() < deadline and any(e.task is None and not e.returned for e in entries):
            time.sleep(0.01)

    def _settle_tasks(self, tasks: list[Any], timeout: float) -> None:
        if not tasks or self._loop is None:
            return

        async def settle() -> None:
            await asyncio.wait(tasks, timeout=timeout)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(settle(), self._loop).result(timeout=timeout + 1)
