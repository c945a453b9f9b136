"""The worker: wires the dispatcher, the executor and the services, and owns the lifecycle.

Threads, and why:
- the dispatcher (the caller of `run()`, or the thread of `start()`): claims into free slots and writes
  outcomes, all database writes of the hot path from one connection, batched (`dispatcher.py`);
- slot threads per queue for sync handlers, one asyncio loop thread for async ones (`executor.py`);
- the keeper: this worker's own duties — heartbeat with the leadership leases, remote pause, lost
  ownership, time limits (`heartbeat.py`);
- the maintainer: fleet-wide duties, run only while this worker is their elected leader (`services/`);
- on PostgreSQL a LISTEN thread, so an enqueue or a control change anywhere wakes us at once.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from djobs import codec, tracing
from djobs.errors import StorageUnavailable
from djobs.event_types import JobStarted
from djobs.jobs import PauseMode
from djobs.retry import RetryConfig, to_seconds
from djobs.worker.classify import Ended
from djobs.worker.control import WorkerControl
from djobs.worker.dispatcher import Dispatcher, announce_events
from djobs.worker.executor import Executor
from djobs.worker.heartbeat import ControlSync, Heartbeat, NewHandlers, Ownership, TimeLimits, identity
from djobs.worker.service import ServiceLoop
from djobs.worker.services.deadlines import Deadlines
from djobs.worker.services.elector import MAINTENANCE, SCHEDULER, Elector
from djobs.worker.services.rescuer import Rescuer
from djobs.worker.services.retention import RetentionService
from djobs.worker.services.scheduler import Scheduler
from djobs.worker.services.trimmer import Trimmer

if TYPE_CHECKING:
    from djobs.jobs import Job
    from djobs.queue import Queue

log = logging.getLogger("djobs.worker")

#: With LISTEN/NOTIFY connected, an idle PostgreSQL worker looks for work on its own only this often (and
#: at the due time of its earliest delayed job): wake-ups come by NOTIFY.
IDLE_BACKSTOP = 30.0
#: How often a sleeping dispatcher looks at the flag the signal handler sets (SIGTERM, SIGINT).
SIGNAL_LOOK = 0.25
_VERBS = {"completed": "completed", "failed": "failed", "retried": "retrying"}


class Worker(WorkerControl):
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
        default_timeout: timedelta | float | None = None,
        burst: bool = False,
        persist_events: bool = True,
        wake_poll: timedelta | float = 0.001,
        batch_linger: timedelta | float = 0.002,
        prefetch: int | None = None,
        observers: list[Any] | None = None,
        retention_interval: timedelta | float = 300.0,
        queue_timeouts: dict[str, timedelta | float] | None = None,
    ) -> None:
        from djobs import validate

        self.queue = queue
        self.storage = queue.storage
        self.queues = dict(queues or {"default": 10})
        for name, n in self.queues.items():
            validate.name("queue name", name)
            if validate.int32(f"concurrency of queue {name!r}", n) < 1:
                raise ValueError(f"concurrency of queue {name!r} must be at least 1")
        self.scheduler = scheduler
        self.poll_interval = to_seconds(poll_interval)
        base = RetryConfig.default()
        if retry_attempts is not None:
            base = dataclasses.replace(base, max_attempts=retry_attempts)
        self.storage_retry = RetryConfig.disabled() if disable_retry else (storage_retry or base)
        self.dequeue_retry = RetryConfig.disabled() if disable_retry else (dequeue_retry or base)
        self.stale_lock_interval = to_seconds(stale_lock_interval)
        self.stale_lock_age = to_seconds(stale_lock_age)
        self.heartbeat_interval = (
            to_seconds(heartbeat_interval) if heartbeat_interval is not None else min(5.0, self.stale_lock_age / 3)
        )
        if self.heartbeat_interval <= 0 or self.heartbeat_interval >= self.stale_lock_age:
            raise ValueError("heartbeat_interval must be positive and shorter than stale_lock_age")
        self.drain_timeout = to_seconds(drain_timeout)
        timeout = None if default_timeout is None else validate.seconds("default_timeout", to_seconds(default_timeout))
        self.burst = burst
        self.persist_events = persist_events
        self.wake_poll = to_seconds(wake_poll)
        self.batch_linger = to_seconds(batch_linger)
        self.prefetch = prefetch
        self.observers = list(observers or [])
        host, pid = identity()
        self.id = f"{host}-{pid}-{uuid.uuid4().hex[:8]}"
        self.types = queue.job_types()
        self.hub = queue.hub

        per_queue = {q: validate.seconds(f"time limit of queue {q!r}", to_seconds(t)) for q, t in (queue_timeouts or {}).items()}
        self.executor = Executor(queue, self.id, self.queues, self._ended, self._started, timeout, per_queue)
        self.dispatcher = Dispatcher(self, self.executor)
        names = [MAINTENANCE, SCHEDULER] if scheduler else [MAINTENANCE]
        self.elector = Elector(self.id, names, self.stale_lock_age - self.heartbeat_interval, self._elected)
        #: Set after a round failed on the database: the commit may have reached it (claims we never saw).
        self.reconcile_needed = False
        #: Queues with fleet-wide limits, claimed under their limits (refreshed with the control state).
        self.limited_queues: set[str] = set()
        sqlite_poll = 0.25
        turns = threading.Lock()
        idle = self.storage.release_connection
        self.keeper = ServiceLoop("keeper", [
            Heartbeat(self, self.heartbeat_interval), ControlSync(self, sqlite_poll, 30.0),
            Ownership(self, sqlite_poll, 2.0), TimeLimits(self), NewHandlers(self),
        ], self.id, idle, turns)  # fmt: skip
        self.maintainer = ServiceLoop("maintainer", [
            Rescuer(self, self.stale_lock_interval, self.stale_lock_age), Deadlines(self),
            Scheduler(self, 30.0 if self.storage.is_pg else 1.0), Trimmer(self),
            RetentionService(self, to_seconds(retention_interval)),
        ], self.id, idle, turns)  # fmt: skip

        self._wake = threading.Event()
        self._stop = threading.Event()
        self._signalled: str | None = None  # set by the signal handler only
        self._stopped = threading.Event()
        self._stopped.set()
        self._paused = False
        self._db_paused = False  # the pause flag as last read from (or written to) the worker's row
        self._control_lock = threading.Lock()
        self._pause_mode: PauseMode | None = None
        self._hook_pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._listener: Any = None
        self._untaken: Any = lambda: None
        self._uncontrol: Any = lambda: None
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
        return len(self.executor.running)

    @property
    def abandoned_handlers(self) -> int:
        """Handlers still running although their slot was freed (time limit, taken away, drain timeout):
        threads cannot be killed."""
        return self.executor.abandoned

    @property
    def stopping(self) -> bool:
        """True from the moment a stop was asked (stop(), SIGTERM, SIGINT): the drain has begun."""
        return self._stop.is_set()

    @property
    def is_running(self) -> bool:
        return not self._stopped.is_set()

    @property
    def is_leader(self) -> bool:
        """This worker runs the fleet-wide maintenance duties now."""
        return self.elector.is_leader(MAINTENANCE)

    @property
    def notified(self) -> bool:
        """LISTEN is connected (PostgreSQL): work and control changes arrive by NOTIFY, polling backs off."""
        return self._listener is not None and self._listener.connected.is_set()

    def wake(self) -> None:
        self._wake.set()

    def wait_woken(self, timeout: float, done: Callable[[], bool]) -> None:
        """Wait for the next wake-up (or `timeout`) unless `done()` holds once the last one is cleared (so a
        wake-up between the caller's check and the clear is not lost; the next round looks at everything)."""
        self._wake.clear()
        if not done():
            self._wake.wait(timeout)

    def pause_for(self, seconds: float) -> None:
        """Back off (database away), waking early if a stop is asked."""
        self._stop.wait(seconds)

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

    def register(self) -> None:
        """Write this worker's row and the job types it serves (so producers without handlers know them)."""
        host, pid = identity()
        self.storage.register_worker(self.id, host, pid, self.queues, self.types)
        types = []
        for name in self.types:
            o = self.queue.get_handler(name).options
            extra = {"backoff": o.backoff.to_json()} if o.backoff is not None else None
            types.append((name, o.queue, o.retries, o.priority, o.timeout, codec.dumps(extra) if extra else None))
        self.storage.register_types(types)

    def _startup(self) -> None:
        self._signalled = None
        self._stopped.clear()
        self.types = self.queue.job_types()
        self.storage.run(self.register, self.storage_retry, "register worker")
        self.storage.add_waker(self._waker)
        self._untaken = self.storage.on_taken(self._on_taken)
        self._uncontrol = self.storage.on_control(self._on_control)
        # Hooks and observers run on one thread of their own (in order, never blocking the dispatcher).
        self._hook_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="djobs-hooks")
        if self.storage.is_pg:
            from djobs.storage.listen import CONTROL, WAKE, Listener

            self._listener = Listener(self.storage, (WAKE, CONTROL), self._on_notify)
            self._listener.start()
        self.keeper.start()
        self.maintainer.start()
        log.info("worker %s started: queues %s, %d job types", self.id, self.queues, len(self.types))

    def _on_notify(self, channel: str) -> None:
        if channel == "djobs_control":
            self.keeper.poke("control")
            self.keeper.poke("ownership")
            self._on_control()
        self._wake.set()

    def _on_control(self) -> None:
        """Something workers plan around changed (a fan-out deadline, a schedule, a limit): look again."""
        self.keeper.poke("control")
        self.maintainer.poke("scheduler")
        self.maintainer.poke("deadlines")

    def _elected(self, name: str) -> None:
        self.maintainer.poke()

    def _shutdown(self) -> None:
        try:
            self._drain()
        finally:
            self._stop.set()
            self.maintainer.stop()
            self.keeper.stop()
            self.storage.remove_waker(self._waker)
            self._untaken()
            self._uncontrol()
            if self._listener is not None:
                self._listener.stop()
            self.executor.close()
            if self._hook_pool is not None:
                self._hook_pool.shutdown(wait=True)
                self._hook_pool = None
            try:
                self.storage.stop_worker(self.id)
            except StorageUnavailable as exc:
                log.warning("worker %s: could not record its stop: %s", self.id, exc)
            self.elector.step_down()
            self._stopped.set()
            log.info("worker %s stopped", self.id)

    def _drain(self) -> None:
        self.executor.blocked = True
        self.dispatcher.release_ready()
        deadline = time.monotonic() + self.drain_timeout
        while self.executor.running and time.monotonic() < deadline and self.drain_timeout > 0:
            self.dispatcher.flush()
            self._wake.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            self._wake.clear()
        self.dispatcher.flush()
        if self.executor.running:
            # What did not finish goes back to pending, attempt refunded; its handlers are cancelled.
            unfinished = list(self.executor.running.values())
            try:
                released = self.storage.run(lambda: self.storage.release_all(self.id), self.storage_retry, "release")
                log.warning("worker %s: released %d unfinished job(s) to pending", self.id, len(released))
                for entry in unfinished:
                    self.executor.running.pop(entry.key, None)
                failed = {f for _, st, f in released if st == "failed" and f}
                if failed:
                    self.dispatcher.decide(failed)
            except StorageUnavailable as exc:
                log.error("worker %s: could not release jobs (%s); the rescuer will recover them", self.id, exc)
            for entry in unfinished:
                self.executor.cancel(entry)
                entry.ended = True
                if entry.span is not None:
                    tracing.end_run(entry, "released", None)
                self.executor.abandoned += 1
            self.executor.settle_async(unfinished)
        self.dispatcher.flush()

    # -- the dispatch loop -----------------------------------------------------------------------------------
    def _loop_forever(self) -> None:
        idle_rounds = 0
        while not self._stop.is_set():
            if self._signalled:
                log.info("worker %s: %s received, draining", self.id, self._signalled)
                self._stop.set()
                break
            self._wake.clear()
            self.dispatcher.linger(self.batch_linger)
            did, claimed = self.dispatcher.cycle(claim=True)
            ex = self.executor
            idle = not ex.running and not self.dispatcher.outcomes and not any(ex.ready.values())
            if self.burst and not claimed and idle and not did:
                # Nothing runnable, nothing in flight, and the last round wrote nothing: everything earlier
                # rounds committed (a woken fan-out parent included) was visible to this claim. One more look
                # a moment later covers a commit another process was making meanwhile.
                idle_rounds += 1
                if idle_rounds >= 2:
                    break
                time.sleep(0.01)
                continue
            idle_rounds = 0
            if not did and not claimed:
                self._idle_wait(idle)

    def _idle_wait(self, idle: bool) -> None:
        if self.storage.is_pg:
            wait = self.poll_interval
            if idle and self.notified and not self._paused:
                # Nothing to do: sleep until our earliest delayed job is due or a NOTIFY arrives.
                due = self.dispatcher.next_due
                until_due = IDLE_BACKSTOP if due is None else due - time.time()
                wait = max(self.poll_interval, min(IDLE_BACKSTOP, until_due))
                if wait >= 1.0:
                    self.storage.release_connection()
            # In slices: a signal handler may not set the event (see _install_signals), so look at its flag.
            deadline = time.monotonic() + wait
            while not self._signalled:
                left = deadline - time.monotonic()
                if left <= 0 or self._wake.wait(min(left, SIGNAL_LOOK)):
                    return
            return
        if self.wake_poll <= 0 or not self.dispatcher.had_room:
            self._wake.wait(self.poll_interval)
            return
        # SQLite: PRAGMA data_version changes when another connection commits; polling it is nearly free.
        try:
            start = self.storage.data_version()
        except StorageUnavailable:
            self._wake.wait(self.poll_interval)
            return
        deadline = time.monotonic() + self.poll_interval
        while time.monotonic() < deadline and not self._signalled:
            if self._wake.wait(self.wake_poll):
                return
            try:
                if self.storage.data_version() != start:
                    return
            except StorageUnavailable:
                return

    # -- endings and announcements ---------------------------------------------------------------------------
    def _ended(self, e: Ended) -> None:
        self.dispatcher.ended(e)

    def _started(self, job: Job) -> None:
        if self.hub.bus.has_subscribers:
            self.hub.publish(JobStarted(job_id=job.id, job=job))
        if (self.hub.hooks("start") or self.observers) and self._hook_pool is not None:
            self._hook_pool.submit(self._notify_start, job)

    def _notify_start(self, job: Job) -> None:
        self.hub.call_hooks("start", job)
        for obs in self.observers:
            try:
                obs.run_started(job)
            except Exception:
                log.exception("djobs: observer %r raised; ignored", obs)

    def announce(self, e: Ended) -> None:
        """In-process events, hooks and observers for an ending that was written (never a dropped one)."""
        entry = e.entry
        job = entry.job
        if e.outcome is not None and e.outcome.kind.value == "fail":
            self._cancel_children_on_failure(job.id)
        if log.isEnabledFor(logging.INFO) and e.label in _VERBS:
            took = (time.monotonic() - entry.started) * 1000
            o = e.outcome
            tail = f": {o.error}" if o is not None and o.error else ""
            if e.label == "retried" and o is not None:
                tail = f" (retry in {o.delay:.1f}s){tail}"
            log.info("%s %s %s, attempt %d, %.0f ms%s", _VERBS[e.label], job.type, job.id, job.attempt, took, tail)
        if not self.hub.listening and not self.observers:
            return
        if self.hub.bus.has_subscribers:
            announce_events(self, e, self.hub.publish, lambda *a: None)
        if (self.hub.has_hooks or self.observers) and self._hook_pool is not None:
            seconds = e.finished - entry.started
            self._hook_pool.submit(self._notify_end, e, seconds)

    def _notify_end(self, e: Ended, seconds: float) -> None:
        announce_events(self, e, lambda ev: None, self.hub.call_hooks)
        for obs in self.observers:
            try:
                obs.run_finished(e.entry.job, e.label, seconds)
            except Exception:
                log.exception("djobs: observer %r raised; ignored", obs)

    def _cancel_children_on_failure(self, job_id: str) -> None:
        try:
            for sub_id in self.storage.sub_jobs_to_cancel_with(job_id):
                self.storage.cancel_tree(sub_id, "parent failed")
        except StorageUnavailable as exc:
            log.warning("could not cancel sub-jobs of failed job %s: %s", job_id, exc)
