"""The worker: claims jobs in batches, runs handlers, writes outcomes in batches, keeps itself alive.

Threads, and why:
- the dispatcher (the caller of `run()`, or the thread of `start()`): claims into free slots and writes
  outcomes, all database writes of the hot path from one connection, batched;
- one thread pool per queue for sync handlers, one asyncio loop thread for async handlers;
- the maintenance thread: heartbeats, remote pause and lost-ownership checks, the stale-job reaper,
  fan-out time-outs and backstops, the scheduler, event-log trimming;
- on PostgreSQL a LISTEN thread, so an enqueue anywhere wakes the dispatcher at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from djobs import codec
from djobs.context import Context
from djobs.durable import decide, invoke
from djobs.errors import (
    JobCancelled,
    NotPaused,
    OwnershipLost,
    RetryAfter,
    StorageUnavailable,
    Suspend,
    error_text,
    has_no_retry,
)
from djobs.events import JobCompleted, JobFailed, JobRetrying, JobStarted, WorkerPaused, WorkerResumed
from djobs.jobs import JobStatus, PauseMode
from djobs.retry import RetryConfig, job_backoff, to_seconds
from djobs.storage import TRANSIENT_ERRORS, one_line

if TYPE_CHECKING:
    from djobs.jobs import Job
    from djobs.queue import Queue
    from djobs.registry import Handler

log = logging.getLogger("djobs.worker")

FLUSH_BATCH = 512
_VERBS = {"complete": "completed", "fail": "failed", "retry": "retrying"}


@dataclass
class _Running:
    job: Job
    handler: Handler
    fanout_id: str | None
    cancel: threading.Event = field(default_factory=threading.Event)
    task: Any = None  # asyncio.Task for async handlers
    loop: asyncio.AbstractEventLoop | None = None
    started: float = field(default_factory=time.monotonic)
    held: bool = False  # claimed as prefetch: the database is told when it starts

    @property
    def key(self) -> tuple[str, int]:
        return (self.job.id, self.job.attempt)


@dataclass
class _Outcome:
    entry: _Running
    kind: str  # complete | fail | retry | release | drop | suspended
    params: tuple[Any, ...] = ()
    exc: BaseException | None = None
    value: Any = None
    delay: float = 0.0
    finished: float = field(default_factory=time.monotonic)
    accounted: bool = False  # its slot was already given back by the dispatcher


class Worker:
    """Runs jobs of the queues it serves. See `Queue.worker()`."""

    def __init__(
        self,
        queue: Queue,
        *,
        queues: dict[str, int] | None = None,
        scheduler: bool = False,
        poll_interval: timedelta | float = 0.1,
        storage_retry: RetryConfig | None = None,
        dequeue_retry: RetryConfig | None = None,
        retry_attempts: int | None = None,
        disable_retry: bool = False,
        stale_lock_interval: timedelta | float = 5.0,
        stale_lock_age: timedelta | float = 30.0,
        heartbeat_interval: timedelta | float | None = None,
        drain_timeout: timedelta | float = 30.0,
        burst: bool = False,
        persist_events: bool = True,
        wake_poll: timedelta | float = 0.001,
        batch_linger: timedelta | float = 0.002,
        prefetch: int | None = None,
    ) -> None:
        self.queue = queue
        self.storage = queue.storage
        self.queues = dict(queues or {"default": 10})
        for name, n in self.queues.items():
            if int(n) < 1:
                raise ValueError(f"concurrency of queue {name!r} must be at least 1")
        self.scheduler = scheduler
        self.poll_interval = to_seconds(poll_interval)
        base = RetryConfig.default()
        if retry_attempts is not None:
            base = dataclasses.replace(base, max_attempts=retry_attempts)
        if disable_retry:
            base = RetryConfig.disabled()
        self.storage_retry = RetryConfig.disabled() if disable_retry else (storage_retry or base)
        self.dequeue_retry = RetryConfig.disabled() if disable_retry else (dequeue_retry or base)
        self.stale_lock_interval = to_seconds(stale_lock_interval)
        self.stale_lock_age = to_seconds(stale_lock_age)
        self.heartbeat_interval = (
            to_seconds(heartbeat_interval) if heartbeat_interval is not None else min(5.0, self.stale_lock_age / 3)
        )
        self.drain_timeout = to_seconds(drain_timeout)
        self.burst = burst
        self.persist_events = persist_events
        self.wake_poll = to_seconds(wake_poll)
        self.batch_linger = to_seconds(batch_linger)
        self.prefetch = prefetch
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.types = queue.job_types()

        self._running: dict[tuple[str, int], _Running] = {}  # by (job id, attempt): one entry per claim
        #: Handlers still running after a stop released their jobs (threads cannot be killed).
        self.abandoned_handlers = 0
        self._executing: dict[str, int] = dict.fromkeys(self.queues, 0)
        self._ready: dict[str, deque[_Running]] = {q: deque() for q in self.queues}
        self._started_held: deque[tuple[str, int]] = deque()  # prefetched claims started since last round
        self._avg_ms: dict[str, float] = {}
        self._outcomes: deque[_Outcome] = deque()
        self._retry_outcomes: list[_Outcome] = []
        self._events: list[tuple[Any, ...]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._signalled: str | None = None  # set by the signal handler only
        self._maint_stop = threading.Event()
        self._in_cycle = False
        self._rounds = 0
        self._stopped = threading.Event()
        self._stopped.set()
        self._slot_lock = threading.Lock()
        self._paused = False
        self._db_paused = False  # the pause flag as last read from (or written to) the worker's row
        self._control_lock = threading.Lock()
        self._pause_mode: PauseMode | None = None
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._hook_pool: ThreadPoolExecutor | None = None
        self._threads: list[threading.Thread] = []
        self._thread: threading.Thread | None = None
        self._listener: Any = None
        self._untaken: Any = lambda: None
        self._waker = self._wake.set

    # -- public state --------------------------------------------------------------------------------------
    @property
    def is_paused(self) -> bool:
        return self._paused

    @property
    def pause_mode(self) -> PauseMode | None:
        return self._pause_mode

    @property
    def running_job_count(self) -> int:
        return len(self._running)

    @property
    def stopping(self) -> bool:
        """True from the moment a stop was asked (stop(), SIGTERM, SIGINT): the drain has begun."""
        return self._stop.is_set()

    @property
    def is_running(self) -> bool:
        return not self._stopped.is_set()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Block until stop() or SIGTERM/SIGINT (or, with burst, until no work is left); drain, then return."""
        restore = self._install_signals()
        try:
            self._startup()
            self._loop_forever()
        finally:
            self._shutdown()
            for sig, old in restore:
                signal.signal(sig, old)

    def start(self) -> None:
        """Run the same loop on a background thread; returns once the worker is registered."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def target() -> None:
            try:
                self._startup()
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            try:
                self._loop_forever()
            finally:
                self._shutdown()

        self._stopped.clear()
        self._thread = threading.Thread(target=target, name=f"djobs-worker-{self.id}", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]

    def stop(self, timeout: timedelta | float | None = None) -> None:
        """Stop claiming, let running jobs finish for up to `timeout` (default: the drain timeout), release
        the rest to pending with their attempt refunded, and return."""
        if timeout is not None:
            self.drain_timeout = to_seconds(timeout)
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        elif threading.current_thread() is not threading.main_thread() or self._thread is None:
            self._stopped.wait(self.drain_timeout + 30)

    def _install_signals(self) -> list[tuple[int, Any]]:
        if threading.current_thread() is not threading.main_thread():
            return []
        restore: list[tuple[int, Any]] = []

        def on_signal(signum: int, frame: Any) -> None:
            # A signal handler runs on the main thread between any two bytecodes, possibly while that thread
            # holds the lock of an Event (inside wait/set/clear): taking a lock here could deadlock. Plain
            # attributes only; the dispatcher (whose waits are short) acts on them.
            if self._signalled:  # second signal: stop waiting for running jobs
                self.drain_timeout = 0
            self._signalled = signal.Signals(signum).name

        for sig in (signal.SIGTERM, signal.SIGINT):
            restore.append((sig, signal.getsignal(sig)))
            signal.signal(sig, on_signal)
        return restore

    def _startup(self) -> None:
        self._signalled = None
        self._stopped.clear()
        self._maint_stop.clear()
        self.types = self.queue.job_types()
        self.storage.run(
            lambda: self.storage.register_worker(
                self.id, socket.gethostname(), os.getpid(), codec.dumps(self.queues), codec.dumps(self.types)
            ),
            self.storage_retry,
            "register worker",
        )
        self.storage.add_waker(self._waker)
        self._untaken = self.storage.on_taken(self._on_taken)
        for name, n in self.queues.items():
            self._pools[name] = ThreadPoolExecutor(max_workers=int(n), thread_name_prefix=f"djobs-{name}")
        # Hooks run on one thread of their own (in order, never blocking the dispatcher); hooks may be
        # added while the worker runs, so the pool always exists.
        self._hook_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="djobs-hooks")
        t = threading.Thread(target=self._maintenance, name="djobs-maintenance", daemon=True)
        t.start()
        self._threads.append(t)
        if self.storage.is_pg:
            from djobs.storage.listen import Listener

            self._listener = Listener(self.storage, "djobs_wake", self._wake.set)
            self._listener.start()
        log.info("worker %s started: queues %s, %d job types", self.id, self.queues, len(self.types))

    def _shutdown(self) -> None:
        try:
            self._drain()
        finally:
            self._stop.set()
            self._maint_stop.set()
            self.storage.remove_waker(self._waker)
            self._untaken()
            if self._listener is not None:
                self._listener.stop()
            for t in self._threads:
                t.join(timeout=5)
            self._threads.clear()
            for pool in self._pools.values():
                pool.shutdown(wait=False, cancel_futures=True)
            self._pools.clear()
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop = None
            if self._hook_pool is not None:
                self._hook_pool.shutdown(wait=True)
                self._hook_pool = None
            with contextlib.suppress(Exception):
                self.storage.stop_worker(self.id)
            self._stopped.set()
            log.info("worker %s stopped", self.id)

    def _drain(self) -> None:
        self._release_ready()
        deadline = time.monotonic() + self.drain_timeout
        while self._running and time.monotonic() < deadline and self.drain_timeout > 0:
            self._flush()
            self._wake.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            self._wake.clear()
        self._flush()
        if self._running:
            # What did not finish goes back to pending, attempt refunded; its handlers are cancelled.
            unfinished = list(self._running.values())
            try:
                released = self.storage.run(lambda: self.storage.release_all(self.id), self.storage_retry, "release")
                log.warning("worker %s: released %d unfinished job(s) to pending", self.id, len(released))
                for entry in unfinished:
                    self._running.pop(entry.key, None)
            except StorageUnavailable as exc:
                log.error("worker %s: could not release jobs (%s); the reaper will recover them", self.id, exc)
            for entry in unfinished:
                self._cancel_entry(entry)
            self._await_cancelled_tasks(unfinished)
            self.abandoned_handlers = len(unfinished)
        self._flush()

    def _await_cancelled_tasks(self, entries: list[_Running]) -> None:
        """Give cancelled async handlers a moment to run their except/finally before the loop stops."""
        tasks = [e.task for e in entries if e.task is not None]
        if not tasks or self._loop is None:
            return

        async def settle() -> None:
            await asyncio.wait(tasks, timeout=2.0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(settle(), self._loop).result(timeout=3.0)

    # -- the dispatch loop -----------------------------------------------------------------------------------
    def _loop_forever(self) -> None:
        idle_rounds = 0
        while not self._stop.is_set():
            if self._signalled:
                self._on_signalled()
                break
            self._wake.clear()
            self._linger()
            did, claimed = self._cycle(claim=True)
            idle = not self._running and not self._outcomes and not any(self._ready.values())
            if self.burst and not claimed and idle and not did:
                idle_rounds += 1
                if idle_rounds >= 3:  # nothing runnable, nothing in flight: a burst worker is done
                    break
                time.sleep(0.05)
                continue
            idle_rounds = 0
            if not did and not claimed:
                self._idle_wait()

    def _on_signalled(self) -> None:
        log.info("worker %s: %s received, draining", self.id, self._signalled)
        self._stop.set()
        self._wake.set()

    def _linger(self) -> None:
        """Let finished jobs gather for a moment (at most `batch_linger`) so one transaction writes many:
        a round trip and a commit cost far more than a millisecond of a handler thread's idle slot."""
        if self.batch_linger <= 0 or not self._outcomes:
            return
        deadline = time.monotonic() + self.batch_linger
        while len(self._outcomes) * 2 < len(self._running) and time.monotonic() < deadline:
            time.sleep(0.0002)

    def _idle_wait(self) -> None:
        if self.storage.is_pg or self.wake_poll <= 0:
            self._wake.wait(self.poll_interval)
            return
        # SQLite: PRAGMA data_version changes when another connection commits; polling it is nearly free.
        try:
            start = self.storage.data_version()
        except Exception:
            self._wake.wait(self.poll_interval)
            return
        deadline = time.monotonic() + self.poll_interval
        while time.monotonic() < deadline and not self._signalled:
            if self._wake.wait(self.wake_poll):
                return
            try:
                if self.storage.data_version() != start:
                    return
            except Exception:
                return

    def _accept(self, row: tuple[Any, ...], held: bool, front: bool = False) -> None:
        """A claimed job waits in its queue's ready line until a slot is free (at once, unless prefetched)."""
        from djobs.queue import job_from_row

        job = job_from_row(row)
        entry = _Running(job=job, handler=self.queue.get_handler(job.type), fanout_id=row[19], held=held)
        line = self._ready.setdefault(job.queue, deque())
        with self._slot_lock:
            if front:
                line.appendleft(entry)
            else:
                line.append(entry)

    # Slots. A sync slot is a pool thread that, when its job ends, takes the next ready job itself: short
    # jobs then run back to back while the dispatcher is in a database round trip. `_executing` counts busy
    # slots; it changes under `_slot_lock`, by the dispatcher (launch) and by slot threads (going idle).
    def _launch_ready(self) -> None:
        if self._paused or self._stop.is_set():
            return  # a pause landed while a claim was in flight: these jobs are released, never run
        for name, line in self._ready.items():
            conc = self.queues.get(name, 0)
            while True:
                with self._slot_lock:
                    if not line or self._executing.get(name, 0) >= conc:
                        break
                    entry = line.popleft()
                    if entry.cancel.is_set():  # taken from us before it started: never run it
                        continue
                    self._executing[name] = self._executing.get(name, 0) + 1
                    self._register(entry)
                self._launch(entry)

    def _register(self, entry: _Running) -> None:
        entry.started = time.monotonic()
        self._running[entry.key] = entry
        if entry.held:
            self._started_held.append(entry.key)

    def _next_ready(self, name: str) -> _Running | None:
        """For a slot whose job just ended: the next ready job, or None (and the slot goes idle)."""
        with self._slot_lock:
            line = self._ready.get(name)
            while line and not self._paused and not self._stop.is_set():
                entry = line.popleft()
                if not entry.cancel.is_set():
                    self._register(entry)
                    return entry
            self._executing[name] = max(0, self._executing.get(name, 1) - 1)
        self._wake.set()
        return None

    def _release_ready(self) -> None:
        with self._slot_lock:
            for line in self._ready.values():
                while line:
                    self._outcomes.append(_Outcome(line.popleft(), "release", accounted=True))

    def _announce_start(self, job: Job) -> None:
        if self.queue._bus.has_subscribers:
            self.queue.emit(JobStarted(job_id=job.id, job=job))
        if self.queue._hooks["start"] and self._hook_pool is not None:
            self._hook_pool.submit(self.queue._call_hooks, "start", job)

    def _launch(self, entry: _Running) -> None:
        self._announce_start(entry.job)
        if entry.handler.is_async:
            loop = self._ensure_loop()
            entry.loop = loop
            asyncio.run_coroutine_threadsafe(self._execute_async(entry), loop)
        else:
            self._pools[entry.job.queue].submit(self._run_slot, entry)

    def _run_slot(self, entry: _Running | None) -> None:
        while entry is not None:
            self._execute_sync(entry)
            queue = entry.job.queue
            entry = self._next_ready(queue)
            if entry is not None:
                if entry.handler.is_async:  # an async job goes to the loop; this slot stays counted for it
                    self._launch(entry)
                    return
                self._announce_start(entry.job)

    def _prefetch(self, name: str) -> int:
        """Jobs to hold ready beyond the free slots, so short jobs never wait for a database round trip.
        Adaptive by default: only while this queue's handlers take under 20 ms on average, so slow jobs
        are never hoarded by one worker while others sit idle."""
        if self.prefetch is not None:
            return self.prefetch
        avg = self._avg_ms.get(name)
        return 4 * self.queues.get(name, 0) if avg is not None and avg < 20.0 else 0

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def runner() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._loop_thread = threading.Thread(target=runner, name="djobs-asyncio", daemon=True)
            self._loop_thread.start()
            ready.wait()
            self._loop = loop
        return self._loop

    # -- running handlers --------------------------------------------------------------------------------------
    def _context(self, entry: _Running) -> Context:
        return Context(self.queue, entry.job, self.id, entry.cancel)

    def _execute_sync(self, entry: _Running) -> None:
        try:
            args = entry.handler.decode(entry.job.args)
        except TypeError as exc:
            self._finish(entry, exc=exc, bad_args=True)
            return
        try:
            value = invoke(entry.handler, self._context(entry), args)
        except BaseException as exc:
            self._finish(entry, exc=exc)
            return
        self._finish(entry, value=value)

    async def _execute_async(self, entry: _Running) -> None:
        from djobs.context import _current

        entry.task = asyncio.current_task()
        try:
            try:
                args = entry.handler.decode(entry.job.args)
            except TypeError as exc:
                self._finish(entry, exc=exc, bad_args=True)
                return
            ctx = self._context(entry)
            token = _current.set(ctx)
            try:
                params = (ctx, args) if entry.handler.wants_ctx else (args,) if entry.handler.takes_args else ()
                value = await entry.handler.fn(*params)
            except BaseException as exc:
                self._finish(entry, exc=exc)
                return
            finally:
                _current.reset(token)
            self._finish(entry, value=value)
        finally:
            self._slot_idle(entry.job.queue)

    def _slot_idle(self, name: str) -> None:
        with self._slot_lock:
            self._executing[name] = max(0, self._executing.get(name, 1) - 1)

    def _finish(self, entry: _Running, value: Any = None, exc: BaseException | None = None, bad_args: bool = False) -> None:
        """Turn a handler's ending into an outcome for the dispatcher to write (never writes itself).
        Whatever happens here, an outcome is queued: a job must never stay running with no one to end it."""
        try:
            self._classify(entry, value, exc, bad_args)
        except BaseException:
            log.exception("job %s: could not classify its outcome; releasing it", entry.job.id)
            self._outcomes.append(_Outcome(entry, "release"))
            self._wake.set()

    def _classify(self, entry: _Running, value: Any, exc: BaseException | None, bad_args: bool) -> None:
        job = entry.job
        if exc is None:
            try:
                text = codec.dumps(value)
            except TypeError as e:
                out = _Outcome(entry, "fail", (f"result is not JSON: {e}",), exc=e)
            else:
                out = _Outcome(entry, "complete", (text,), value=codec.loads(text))
        elif isinstance(exc, Suspend):
            out = _Outcome(entry, "suspended")
        elif isinstance(exc, OwnershipLost):
            out = _Outcome(entry, "drop")
        elif isinstance(exc, (StorageUnavailable, *TRANSIENT_ERRORS)):
            # The database went away under a durable write: not the job's fault. Drop this thread's broken
            # connection and give the job back with its attempt refunded (written once the database is back).
            self.storage.reset_connection()
            log.warning("job %s (%s): database unavailable in the handler: %s", job.id, job.type, one_line(exc))
            out = _Outcome(entry, "release")
        elif isinstance(exc, JobCancelled | asyncio.CancelledError):
            # Cancelled cooperatively. Usually the job is no longer ours (cancelled, paused, released) and
            # this guarded write matches nothing; if it still is ours, it goes back to pending untouched.
            out = _Outcome(entry, "release")
        elif bad_args:
            out = _Outcome(entry, "fail", (f"args do not fit the handler: {error_text(exc)}",), exc=exc)
        elif isinstance(exc, RetryAfter) and not has_no_retry(exc):
            if job.attempt <= job.max_retries:
                out = _Outcome(entry, "retry", (error_text(exc), exc.delay), exc=exc, delay=exc.delay)
            else:
                out = _Outcome(entry, "fail", (error_text(exc),), exc=exc)
        elif has_no_retry(exc) or job.attempt > job.max_retries:
            out = _Outcome(entry, "fail", (error_text(exc),), exc=exc)
        else:
            delay = job_backoff(job.attempt)
            out = _Outcome(entry, "retry", (error_text(exc), delay), exc=exc, delay=delay)
        if exc is not None and out.kind in ("fail", "retry"):
            log.debug("job %s (%s) attempt %d: %s", job.id, job.type, job.attempt, error_text(exc))
        self._outcomes.append(out)
        self._wake.set()

    # -- writing outcomes ----------------------------------------------------------------------------------------
    def _flush(self) -> bool:
        return self._cycle(claim=False)[0]

    def _cycle(self, claim: bool) -> tuple[bool, int]:
        self._in_cycle = True
        self._rounds += 1
        try:
            return self._cycle_once(claim)
        finally:
            self._in_cycle = False

    def _cycle_once(self, claim: bool) -> tuple[bool, int]:
        """One dispatcher round in one transaction: write finished jobs' outcomes, claim into free slots
        (plus the prefetch). Finished handlers give their slot back before the round trip, so ready jobs
        start at once. Returns (wrote anything, number claimed)."""
        batch = self._retry_outcomes
        self._retry_outcomes = []
        while self._outcomes and len(batch) < FLUSH_BATCH:
            batch.append(self._outcomes.popleft())
        for o in batch:
            if o.accounted:
                continue
            o.accounted = True
            entry = self._running.get(o.entry.key)
            if entry is o.entry:
                q = entry.job.queue
                took = (o.finished - entry.started) * 1000
                prev = self._avg_ms.get(q)
                self._avg_ms[q] = took if prev is None else prev * 0.8 + took * 0.2
        if self._paused or self._stop.is_set():
            self._release_ready()
            while self._outcomes and len(batch) < FLUSH_BATCH:
                batch.append(self._outcomes.popleft())
        else:
            self._launch_ready()
        claims: list[tuple[str, list[str], int, bool, bool]] = []  # (queue, types, n, held, prefetch)
        if claim and not self._paused and not self._stop.is_set() and self.types:
            for name, conc in self.queues.items():
                waiting = len(self._ready.get(name, ()))
                free = max(0, conc - self._executing.get(name, 0) - waiting)
                extra = conc + self._prefetch(name) - self._executing.get(name, 0) - waiting - free
                # A claim for a free slot counts its attempt at once (a job that kills its worker the
                # moment it starts must still run out of attempts); a prefetched claim is held until its
                # start is recorded, so a worker lost before then gives the attempt back (see the reaper).
                if free > 0:
                    claims.append((name, self.types, free, False, False))
                if extra > 0:
                    claims.append((name, self.types, extra, True, True))
        started: list[tuple[str, int]] = []
        while self._started_held:
            started.append(self._started_held.popleft())
        if not batch and not self._events and not claims and not started:
            return False, 0
        writes: list[tuple[str, str, int, tuple[Any, ...]]] = []
        write_idx: list[int] = []
        for i, o in enumerate(batch):
            if o.kind in ("complete", "fail", "retry", "release"):
                writes.append((o.kind, o.entry.job.id, o.entry.job.attempt, o.params))
                write_idx.append(i)
        events = self._events
        self._events = []
        outcome_events = self._event_rows(batch, write_idx)
        try:
            matched, rows = self.storage.run(
                lambda: self.storage.cycle(
                    self.id, writes, events, outcome_events, [c[:4] for c in claims], self.persist_events, started
                ),
                self.storage_retry if batch else self.dequeue_retry,
                "write outcomes and claim",
            )
        except StorageUnavailable as exc:
            log.warning("worker %s: database unavailable (%s); %d outcome(s) kept for retry", self.id, exc, len(writes))
            self._retry_outcomes = batch
            self._events = events + self._events
            self._started_held.extendleft(reversed(started))
            self._stop.wait(min(5.0, max(self.poll_interval, 1.0)))
            return False, 0
        owned = dict.fromkeys(range(len(batch)), False)
        for i, ok in zip(write_idx, matched, strict=True):
            owned[i] = ok
        fanouts: set[str] = set()
        for i, o in enumerate(batch):
            entry = self._running.pop(o.entry.key, None)
            if entry is None or not owned[i]:
                continue  # never launched, or someone else owns the job now: drop silently
            if o.kind in ("complete", "fail") and entry.fanout_id:
                fanouts.add(entry.fanout_id)
            self._announce(entry, o)
        rows.sort(key=lambda r: (-r[0][4], r[0][10], r[0][0]))
        # Claims for free slots go to the front of their line: they were counted as started, so they must
        # start now, before prefetched ones (a worker lost gives a prefetched job its attempt back).
        # Claims for free slots go to the front of their line, to start now; prefetched ones queue behind.
        for row, k in [r for r in rows if not claims[r[1]][4]][::-1]:
            self._accept(row, claims[k][3], front=True)
        for row, k in [r for r in rows if claims[r[1]][4]]:
            self._accept(row, claims[k][3])
        self._launch_ready()
        if fanouts:
            self._decide(fanouts)
        return bool(batch) or bool(started), len(rows)

    def _event_rows(self, batch: list[_Outcome], write_idx: list[int]) -> list[tuple[Any, ...] | None]:
        if not self.persist_events:
            return [None] * len(write_idx)
        rows: list[tuple[Any, ...] | None] = []
        for i in write_idx:
            o = batch[i]
            job = o.entry.job
            if o.kind == "complete":
                rows.append(("job_completed", job.id, job.queue, self.id, None))
            elif o.kind == "fail":
                rows.append(("job_failed", job.id, job.queue, self.id, codec.dumps({"error": o.params[0]})))
            elif o.kind == "retry":
                data = codec.dumps({"error": o.params[0], "attempt": job.attempt, "delay": o.delay})
                rows.append(("job_retrying", job.id, job.queue, self.id, data))
            else:
                rows.append(None)
        return rows

    def _announce(self, entry: _Running, o: _Outcome) -> None:
        """In-process events and hooks for an outcome that was written (never for a dropped one)."""
        job = entry.job
        subscribers = self.queue._bus.has_subscribers
        hooks = self._hook_pool is not None and any(self.queue._hooks.values())
        if o.kind == "fail":
            self._cancel_children_on_failure(job.id)
        if log.isEnabledFor(logging.INFO) and o.kind in _VERBS:
            took = (time.monotonic() - entry.started) * 1000
            tail = f": {o.params[0]}" if o.kind in ("fail", "retry") else ""
            if o.kind == "retry":
                tail = f" (retry in {o.delay:.1f}s){tail}"
            log.info("%s %s %s, attempt %d, %.0f ms%s", _VERBS[o.kind], job.type, job.id, job.attempt, took, tail)
        if not subscribers and not hooks:
            return
        if o.kind == "complete":
            snap = dataclasses.replace(job, status=JobStatus.COMPLETED, result=o.value)
            if subscribers:
                self.queue.emit(JobCompleted(job_id=job.id, job=snap))
            if hooks and self.queue._hooks["complete"]:
                self._hook_pool.submit(self.queue._call_hooks, "complete", snap, o.value)  # type: ignore[union-attr]
        elif o.kind == "fail":
            snap = dataclasses.replace(job, status=JobStatus.FAILED, last_error=o.params[0])
            if subscribers:
                self.queue.emit(JobFailed(job_id=job.id, job=snap, error=o.params[0]))
            if hooks and self.queue._hooks["fail"]:
                self._hook_pool.submit(self.queue._call_hooks, "fail", snap, o.exc)  # type: ignore[union-attr]
        elif o.kind == "retry":
            from djobs.jobs import from_epoch

            snap = dataclasses.replace(job, status=JobStatus.RETRYING, last_error=o.params[0])
            nxt = from_epoch(time.time() + o.delay)
            if subscribers:
                self.queue.emit(JobRetrying(job_id=job.id, job=snap, error=o.params[0], attempt=job.attempt, next_run_at=nxt))
            if hooks and self.queue._hooks["retry"]:
                self._hook_pool.submit(self.queue._call_hooks, "retry", snap, job.attempt, o.exc)  # type: ignore[union-attr]

    def _cancel_children_on_failure(self, job_id: str) -> None:
        st = self.storage
        try:
            rows = st.execute(
                st.dialect.render(
                    "SELECT s.id FROM djobs_jobs s JOIN djobs_fanouts f ON s.fanout_id = f.id "
                    "WHERE f.parent_id = ? AND f.cancel_on_parent_failure = 1 "
                    "AND s.status NOT IN ('completed','failed','cancelled')"
                ),
                (job_id,),
            ).fetchall()
            for (sub_id,) in rows:
                st.cancel_tree(sub_id, "parent failed")
        except Exception as exc:
            log.warning("could not cancel sub-jobs of failed job %s: %s", job_id, one_line(exc))

    def _decide(self, fanouts: set[str]) -> None:
        for fid in sorted(fanouts):
            try:
                self.storage.run(functools.partial(self.storage.evaluate_fanout, fid, decide), self.storage_retry, "fan-out")
            except StorageUnavailable as exc:  # the maintenance backstop decides it later
                log.warning("fan-out %s: %s", fid, exc)

    def _cancel_entry(self, entry: _Running) -> None:
        entry.cancel.set()
        if entry.task is not None and entry.loop is not None:
            entry.loop.call_soon_threadsafe(entry.task.cancel)

    # -- pause, resume, cancel ----------------------------------------------------------------------------------
    def pause(self, mode: PauseMode = PauseMode.GRACEFUL, reason: str | None = None) -> None:
        """Graceful: stop claiming, running jobs finish. Aggressive: running handlers are cancelled and
        their jobs released to pending (attempt refunded). Stored in the database."""
        mode = PauseMode(mode)
        with self._control_lock:
            self._paused = True
            self._pause_mode = mode
            self.storage.run(
                lambda: self.storage.set_worker_pause(self.id, True, mode.value, reason), self.storage_retry, "pause"
            )
            self._db_paused = True
        if mode == PauseMode.AGGRESSIVE:
            self._cancel_lost()
        self.queue._persist_events([("worker_paused", None, None, self.id, codec.dumps({"mode": mode.value, "reason": reason}))])
        self.queue.emit(WorkerPaused(worker_id=self.id, mode=mode))

    def resume(self) -> None:
        with self._control_lock:
            self.storage.run(
                lambda: self.storage.set_worker_pause(self.id, False, None, None), self.storage_retry, "resume"
            )
            self._db_paused = False
            mode = self._pause_mode
            self._paused = False
            self._pause_mode = None
        self.queue._persist_events([("worker_resumed", None, None, self.id, None)])
        self.queue.emit(WorkerResumed(worker_id=self.id, mode=mode))
        self._wake.set()

    def wait_for_pause(self, timeout: timedelta | float = 5.0) -> None:
        """Block until a paused worker has no running jobs; TimeoutError, or NotPaused if not paused."""
        if not self._paused:
            raise NotPaused(f"worker {self.id} is not paused")
        deadline = time.monotonic() + to_seconds(timeout)
        self._wake.set()
        while self._holds_jobs():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"worker {self.id} still runs {len(self._running)} job(s)")
            time.sleep(0.01)

    def _holds_jobs(self) -> bool:
        """Anything of ours still running in the database: handlers, claims in flight or not yet started,
        outcomes (releases included) not yet written."""
        return bool(
            self._running or self._in_cycle or self._outcomes or self._retry_outcomes
            or any(self._ready.values())
        )

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a job running on this worker (as queue.cancel_job); False if it is not running here."""
        entries = [e for e in list(self._running.values()) if e.job.id == job_id]
        if not entries:
            return False
        self.queue.cancel_job(job_id)
        for entry in entries:
            self._cancel_entry(entry)
        return True

    def _on_taken(self, job_ids: list[str]) -> None:
        """This process just took these jobs from their workers: if any run here, cancel them now."""
        ids = set(job_ids)
        for entry in list(self._running.values()):
            if entry.job.id in ids and not entry.cancel.is_set():
                self._cancel_entry(entry)
        with self._slot_lock:
            for line in self._ready.values():
                for entry in [e for e in line if e.job.id in ids]:
                    entry.cancel.set()
                    line.remove(entry)

    def _cancel_lost(self) -> None:
        """Reconcile this worker's view with the database, both ways. Handlers of jobs it no longer owns
        (cancelled, paused, reclaimed elsewhere) are cancelled. Claims the database says it holds but it
        does not know of (a round whose commit reached the server while the client saw the connection
        drop) are released, attempt refunded; else they would stay running, heartbeated, forever."""
        held = [e for line in self._ready.values() for e in list(line)]
        rounds = self._rounds
        # Snapshot first: a job claimed after the query below must not look "lost".
        candidates = list(self._running.items())
        owned = self.storage.owned_running(self.id)
        for entry in held:
            if entry.key not in owned:
                entry.cancel.set()  # prefetched but taken away before it started: never launch it
        with self._slot_lock:
            for line in self._ready.values():
                for entry in [e for e in line if e.cancel.is_set()]:
                    line.remove(entry)
            known = set(self._running) | {e.key for line in self._ready.values() for e in line}
        for key, entry in candidates:
            if key not in owned and not entry.cancel.is_set():
                log.info("job %s (attempt %d) was taken from worker %s; cancelling its handler", key[0], key[1], self.id)
                self._cancel_entry(entry)
        if self._in_cycle or self._rounds != rounds or self._outcomes or self._retry_outcomes:
            return  # a round may be between its commit and taking its claims in: look again next time
        orphans = [key for key in owned - known]
        if orphans:
            log.warning("worker %s: %d claim(s) it did not know of; releasing them", self.id, len(orphans))
            self.storage.release_claims(self.id, orphans)

    # -- maintenance ---------------------------------------------------------------------------------------------
    def _maintenance(self) -> None:
        last_hb = last_reap = last_trim = last_sched = 0.0
        # Runs until the drain is over (not just until stop is asked): a draining worker must keep
        # heartbeating, or another worker would recover jobs it is still running.
        while not self._maint_stop.wait(0.25):
            now = time.monotonic()
            try:
                self._sync_control()
                if now - last_hb >= self.heartbeat_interval:
                    last_hb = now
                    if not self.storage.heartbeat(self.id, len(self._running)):
                        log.warning("worker %s: its row was gone; registering again", self.id)
                        self.storage.register_worker(
                            self.id, socket.gethostname(), os.getpid(), codec.dumps(self.queues), codec.dumps(self.types)
                        )
                if self.stale_lock_interval > 0 and now - last_reap >= self.stale_lock_interval:
                    last_reap = now
                    self._reap()
                types = self.queue.job_types()  # handlers registered after start are served too
                if types != self.types:
                    self.types = types
                if self.scheduler and not self._stop.is_set() and now - last_sched >= 0.5:
                    last_sched = now
                    self.queue._scheduler_tick()
                if now - last_trim >= 60:
                    last_trim = now
                    self.storage.trim_events(self.queue.event_retention, self.queue.event_max_rows)
            except Exception as exc:
                self.storage.reset_connection()
                log.warning("worker %s maintenance: %s", self.id, one_line(exc))
                self._stop.wait(1.0)

    def _sync_control(self) -> None:
        with self._control_lock:
            state = self.storage.worker_control(self.id)
            # Only a change in the database (made by another process) moves the local state; comparing with
            # the local flag would undo a local pause whose write raced this read.
            changed = state is not None and state[0] != self._db_paused
            if state is not None:
                self._db_paused = state[0]
        if state is not None and changed:
            paused, mode = state
            if paused != self._paused:
                self._paused = paused
                self._pause_mode = PauseMode(mode) if paused and mode else None
                if paused:
                    self.queue.emit(WorkerPaused(worker_id=self.id, mode=self._pause_mode or PauseMode.GRACEFUL))
                else:
                    self.queue.emit(WorkerResumed(worker_id=self.id))
                    self._wake.set()
        self._cancel_lost()

    def _reap(self) -> None:
        rows = self.storage.reap(self.stale_lock_age, "worker lost (no heartbeat) and attempts are spent")
        if rows:
            log.warning("worker %s: recovered %d job(s) from silent workers", self.id, len(rows))
            self.queue._persist_events(
                [("job_failed" if st == "failed" else "job_recovered", jid, q, self.id, None) for jid, st, q, _, _ in rows]
            )
            self._wake.set()
        fanouts = {f for _, st, _, _, f in rows if f and st == "failed"}
        timed_out, finished = self.storage.fanouts_due()
        for fid in timed_out:
            subs = self.storage.execute(
                self.storage.dialect.render(
                    "SELECT id FROM djobs_jobs WHERE fanout_id = ? AND status NOT IN ('completed','failed','cancelled')"
                ),
                (fid,),
            ).fetchall()
            for (sub_id,) in subs:
                self.storage.cancel_tree(sub_id, "fan-out timed out")
        fanouts.update(timed_out, finished)
        if fanouts:
            self._decide(fanouts)
        if self.storage.resume_orphaned_waiters():
            self._wake.set()
