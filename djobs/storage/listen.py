"""PostgreSQL LISTEN on a connection of its own, so a NOTIFY from any process wakes us at once.

One listener serves several channels (a worker listens for new work and for control changes on one
connection). It reconnects with backoff when the server goes away; until then, callers fall back on their
own backstop checks. Waiting for a notification costs the server nothing: no statement, no transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from djobs.storage.core import PeeweeStorage

log = logging.getLogger("djobs.listen")

#: Channels djobs notifies: new or woken jobs; control changes (pauses, cancels, limits, schedules);
#: new event-log rows.
WAKE, CONTROL, EVENT = "djobs_wake", "djobs_control", "djobs_event"


class Listener:
    def __init__(self, storage: PeeweeStorage, channels: tuple[str, ...], on_notify: Callable[[str], None]) -> None:
        self.conninfo = storage.conninfo or ""
        # A wrapped peewee database (PeeweeStorage(db)) has no URL of ours: reuse its connect parameters.
        db: Any = storage.db
        self.params = {} if storage.conninfo else {"dbname": db.database, **getattr(db, "connect_params", {})}
        self.channels = channels
        self.on_notify = on_notify
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"djobs-listen-{'+'.join(channels)}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """Stop listening. The thread ends at its next half-second tick on its own (it is a daemon): a
        stopping worker does not wait for it unless asked."""
        self._stop.set()
        if wait > 0:
            self._thread.join(timeout=wait)

    def _run(self) -> None:
        import psycopg

        backoff = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, **self.params) as conn:
                    for channel in self.channels:
                        conn.execute(f"LISTEN {channel}")
                    # Notifications carry the sender's schema: other djobs schemas on this server are not ours.
                    row = conn.execute("SELECT current_schema()").fetchone()
                    schema = row[0] if row else None
                    backoff = 0.2
                    self.connected.set()
                    for channel in self.channels:  # anything sent while we were away: look once
                        self.on_notify(channel)
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5, stop_after=1):
                            if not note.payload or note.payload == schema:
                                self.on_notify(note.channel)
            except Exception as exc:
                self.connected.clear()
                if self._stop.is_set():
                    return
                log.info("LISTEN %s: %s; reconnecting in %.1fs", self.channels, " ".join(str(exc).split()), backoff)
                self._stop.wait(backoff)
                backoff = min(5.0, backoff * 2)
