"""PostgreSQL LISTEN on a connection of its own, so a NOTIFY from any process wakes us at once.

The listener reconnects with backoff when the server goes away; until then, callers fall back on polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from djobs.storage.core import PeeweeStorage

log = logging.getLogger("djobs.listen")


class Listener:
    def __init__(self, storage: PeeweeStorage, channel: str, on_notify: Callable[[], None]) -> None:
        self.conninfo = storage.conninfo or ""
        # A wrapped peewee database (PeeweeStorage(db)) has no URL of ours: reuse its connect parameters.
        db: Any = storage.db
        self.params = {} if storage.conninfo else {"dbname": db.database, **getattr(db, "connect_params", {})}
        self.channel = channel
        self.on_notify = on_notify
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"djobs-listen-{channel}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def _run(self) -> None:
        import psycopg

        backoff = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, **self.params) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    backoff = 0.2
                    self.on_notify()  # anything sent while we were away: look once
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.on_notify()
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.info("LISTEN %s: %s; reconnecting in %.1fs", self.channel, " ".join(str(exc).split()), backoff)
                self._stop.wait(backoff)
                backoff = min(5.0, backoff * 2)
