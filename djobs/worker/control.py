"""A worker's pause, resume and cancel, from its own process or any other, and keeping its view of what it
runs in step with the database (`reconcile`)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from djobs.errors import NotPaused
from djobs.event_types import WorkerPaused, WorkerResumed
from djobs.jobs import PauseMode
from djobs.retry import to_seconds

if TYPE_CHECKING:
    from djobs.events import EventHub
    from djobs.queue import Queue
    from djobs.retry import RetryConfig
    from djobs.storage import PeeweeStorage
    from djobs.worker.dispatcher import Dispatcher
    from djobs.worker.executor import Executor

log = logging.getLogger("djobs.worker")


class WorkerControl:
    if TYPE_CHECKING:
        id: str
        queue: Queue
        storage: PeeweeStorage
        hub: EventHub
        executor: Executor
        dispatcher: Dispatcher
        storage_retry: RetryConfig
        reconcile_needed: bool
        _paused: bool
        _db_paused: bool
        _pause_mode: PauseMode | None
        _control_lock: threading.Lock
        _wake: threading.Event

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
            self.reconcile()
        self.hub.publish(WorkerPaused(worker_id=self.id, mode=mode))

    def resume(self) -> None:
        with self._control_lock:
            self.storage.run(lambda: self.storage.set_worker_pause(self.id, False, None, None), self.storage_retry, "resume")
            self._db_paused = False
            mode = self._pause_mode
            self._paused = False
            self._pause_mode = None
        self.hub.publish(WorkerResumed(worker_id=self.id, mode=mode))
        self._wake.set()

    def wait_for_pause(self, timeout: timedelta | float = 5.0) -> None:
        """Block until a paused worker has no running jobs; TimeoutError, or NotPaused if not paused."""
        if not self._paused:
            raise NotPaused(f"worker {self.id} is not paused")
        deadline = time.monotonic() + to_seconds(timeout)
        self._wake.set()
        while self._holds_jobs():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"worker {self.id} still runs {len(self.executor.running)} job(s)")
            time.sleep(0.01)

    def _holds_jobs(self) -> bool:
        """Anything of ours still running in the database: handlers, claims in flight or not yet started,
        outcomes (releases included) not yet written."""
        return bool(self.executor.running or self.dispatcher.busy or any(self.executor.ready.values()))

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a job running on this worker (as queue.cancel_job); False if it is not running here."""
        entries = [e for e in list(self.executor.running.values()) if e.job.id == job_id]
        if not entries:
            return False
        self.queue.cancel_job(job_id)
        for entry in entries:
            self.executor.cancel(entry)
        return True

    def _on_taken(self, job_ids: list[str]) -> None:
        """This process just took these jobs from their workers: if any run here, cancel them now."""
        ids = set(job_ids)
        ex = self.executor
        for entry in list(ex.running.values()):
            if entry.job.id in ids and not entry.cancel.is_set():
                ex.cancel(entry)
        with ex.lock:
            for line in ex.ready.values():
                for entry in [e for e in line if e.job.id in ids]:
                    entry.cancel.set()
                    line.remove(entry)

    def sync_control(self) -> bool:
        """Follow a pause or resume of this worker made by another process. True if it changed."""
        with self._control_lock:
            state = self.storage.worker_control(self.id)
            # Only a change in the database (made by another process) moves the local state; comparing with
            # the local flag would undo a local pause whose write raced this read.
            changed = state is not None and state[0] != self._db_paused
            if state is not None:
                self._db_paused = state[0]
        if state is None or not changed or state[0] == self._paused:
            return False
        paused, mode = state
        self._paused = paused
        self._pause_mode = PauseMode(mode) if paused and mode else None
        if paused:
            self.hub.publish(WorkerPaused(worker_id=self.id, mode=self._pause_mode or PauseMode.GRACEFUL))
            self.reconcile()
        else:
            self.hub.publish(WorkerResumed(worker_id=self.id))
            self._wake.set()
        return True

    def reconcile(self) -> int:
        """Reconcile this worker's view with the database, both ways. Handlers of jobs it no longer owns
        (cancelled, paused, reclaimed elsewhere) are cancelled. Claims the database says it holds but it
        does not know of (a round whose commit reached the server while the client saw the connection
        drop) are released, attempt refunded; else they would stay running, heartbeated, forever."""
        ex = self.executor
        held = [e for line in ex.ready.values() for e in list(line)]
        rounds = self.dispatcher.rounds
        # Snapshot first: a job claimed after the query below must not look "lost".
        candidates = list(ex.running.items())
        owned = self.storage.owned_running(self.id)
        for entry in held:
            if entry.key not in owned:
                entry.cancel.set()  # prefetched but taken away before it started: never launch it
        with ex.lock:
            for line in ex.ready.values():
                for entry in [e for e in line if e.cancel.is_set()]:
                    line.remove(entry)
            known = set(ex.running) | {e.key for line in ex.ready.values() for e in line}
        lost = 0
        for key, entry in candidates:
            if key not in owned and not entry.cancel.is_set():
                log.info("job %s (attempt %d) was taken from worker %s; cancelling its handler", key[0], key[1], self.id)
                ex.cancel(entry)
                lost += 1
        if self.dispatcher.busy or self.dispatcher.rounds != rounds:
            return lost  # a round may be between its commit and taking its claims in: look again next time
        self.reconcile_needed = False
        orphans = list(owned - known)
        if orphans:
            log.warning("worker %s: %d claim(s) it did not know of; releasing them", self.id, len(orphans))
            self.storage.release_claims(self.id, orphans)
        return lost + len(orphans)
