"""Small services, each one duty, run by a loop thread: the shape River gives its maintenance services.

A service does a bounded amount of work in `run_once()` and returns how much it did (for the log); it
says when it wants to run next (`next_in()`, seconds) and whether it may run at all now (`active()`: a
fleet-wide duty runs only on the elected leader). A loop runs several services on one thread (one database
connection), each isolated: one that raises is logged and retried with backoff, never stopping the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("djobs.worker")

#: A service that failed waits this long before trying again, doubling up to MAX_BACKOFF.
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 30.0


class Service:
    name = "service"
    #: The longest a failing run waits before the next try.
    max_backoff = MAX_BACKOFF

    def active(self) -> bool:
        return True

    def next_in(self) -> float:
        """Seconds until the next run (after a successful one)."""
        raise NotImplementedError

    def run_once(self) -> int:
        raise NotImplementedError


class ServiceLoop:
    """Runs services on one thread until stopped; `poke()` runs one (or all) at once."""

    def __init__(
        self,
        name: str,
        services: Sequence[Service],
        worker_id: str,
        idle: Callable[[], None] = lambda: None,
        turns: threading.Lock | None = None,
    ) -> None:
        self.name = name
        self._idle = idle  # called before each sleep: e.g. hand the database connection back to the pool
        # Loops sharing `turns` never run at once, so an idle worker's loops share one pooled connection.
        self._turns = turns or threading.Lock()
        self.services = list(services)
        self.worker_id = worker_id
        self._due = {s.name: 0.0 for s in self.services}
        self._pokes = {s.name: 0 for s in self.services}
        self._failures = {s.name: 0 for s in self.services}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"djobs-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=wait)

    def poke(self, name: str | None = None) -> None:
        for s in self.services:
            if name is None or s.name == name:
                self._pokes[s.name] += 1
                self._due[s.name] = 0.0
        self._wake.set()

    def run_due(self) -> float:
        """Run every active service that is due; return seconds until the next one is."""
        now = time.monotonic()
        for s in self.services:
            if self._stop.is_set():
                break
            if not s.active() or now < self._due[s.name]:
                continue
            pokes = self._pokes[s.name]
            try:
                did = s.run_once()
            except Exception as exc:
                n = self._failures[s.name] = self._failures[s.name] + 1
                wait = min(s.max_backoff, FIRST_BACKOFF * 2 ** (n - 1))
                log.warning("worker %s: %s failed (%s); again in %.0fs", self.worker_id, s.name, " ".join(str(exc).split()), wait)
                self._due[s.name] = time.monotonic() + wait
            else:
                self._failures[s.name] = 0
                if did:
                    log.debug("worker %s: %s did %d", self.worker_id, s.name, did)
                self._due[s.name] = time.monotonic() + max(0.0, s.next_in())
                if self._pokes[s.name] != pokes:
                    # Poked while it ran: the run may have read the state before the change that poked it (a
                    # pause committed mid-run), so it runs again now, not at its next time. (A failed run
                    # keeps its backoff.)
                    self._due[s.name] = 0.0
        now = time.monotonic()
        waits = [self._due[s.name] - now for s in self.services if s.active()]
        return max(0.0, min(waits)) if waits else 1.0

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._turns:
                wait = self.run_due()
                self._idle()
            # Re-check activity at least every second (leadership can change under a sleeping loop).
            self._wake.wait(min(wait, 1.0))
            self._wake.clear()
