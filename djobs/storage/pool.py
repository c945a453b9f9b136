"""Connection pool settings and their honest mapping onto Peewee's pool.

    store = djobs.connect(url, pool=djobs.PoolConfig.high_concurrency())

| PoolConfig      | Peewee / djobs                                                                  |
|-----------------|---------------------------------------------------------------------------------|
| `max_open`      | `max_connections` of `PooledPostgresqlDatabase`: checked-out connections cap     |
| `max_idle`      | djobs: a returned connection beyond this many idle ones is closed, not pooled   |
| `max_lifetime`  | `stale_timeout`: a connection older than this is closed at check-in/check-out   |
| `max_idle_time` | djobs: an idle connection unused for longer than this is closed at check-out    |

SQLite has no server connections to pool: each thread keeps one connection to the file and the settings
do not apply. Peewee binds one connection per thread, so a worker uses about concurrency + 3 connections.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from playhouse.pool import PooledPostgresqlDatabase

from djobs.retry import to_seconds

#: A pooled connection idle for less than this is reused without a round trip to check it.
TRUST_IDLE_SECONDS = 30.0


@dataclass(frozen=True)
class PoolConfig:
    max_open: int = 25
    max_idle: int = 10
    max_lifetime: float = 300.0
    max_idle_time: float = 60.0

    def __init__(
        self,
        max_open: int = 25,
        max_idle: int = 10,
        max_lifetime: timedelta | float = 300.0,
        max_idle_time: timedelta | float = 60.0,
    ) -> None:
        object.__setattr__(self, "max_open", int(max_open))
        object.__setattr__(self, "max_idle", int(max_idle))
        object.__setattr__(self, "max_lifetime", to_seconds(max_lifetime))
        object.__setattr__(self, "max_idle_time", to_seconds(max_idle_time))

    @classmethod
    def default(cls) -> PoolConfig:
        return cls(25, 10, 300, 60)

    @classmethod
    def high_concurrency(cls) -> PoolConfig:
        return cls(100, 25, 600, 120)

    @classmethod
    def low_latency(cls) -> PoolConfig:
        return cls(50, 40, 900, 300)

    @classmethod
    def resource_constrained(cls) -> PoolConfig:
        return cls(10, 5, 180, 30)


class DjobsPooledPostgres(PooledPostgresqlDatabase):
    """Peewee's pool plus the two limits it lacks: idle count and idle time."""

    def __init__(self, database: str, pool: PoolConfig, **kwargs: Any) -> None:
        self._pool_cfg = pool
        self._idle_since: dict[int, float] = {}
        # Who checked each connection out: a thread that ends without handing its connection back (peewee
        # binds connections to threads) would otherwise hold a pool place for ever.
        self._owners: dict[int, threading.Thread] = {}
        super().__init__(
            database,
            max_connections=pool.max_open,
            stale_timeout=max(1, int(pool.max_lifetime)),
            timeout=30,
            **kwargs,
        )

    def _connect(self) -> Any:
        with self._pool_lock:
            cutoff = time.time() - self._pool_cfg.max_idle_time
            keep = []
            current: list[Any] = getattr(self, "_connections")  # noqa: B009 - set by the base class
            for ts, counter, conn in current:
                if self._idle_since.get(id(conn), time.time()) < cutoff:
                    self._idle_since.pop(id(conn), None)
                    self._close_raw(conn)
                else:
                    keep.append((ts, counter, conn))
            if len(keep) != len(current):
                import heapq

                heapq.heapify(keep)
                self._connections = keep
            in_use: dict[int, Any] = getattr(self, "_in_use")  # noqa: B009 - set by the base class
            for key in [k for k, t in self._owners.items() if not t.is_alive()]:
                self._owners.pop(key, None)
                orphan = in_use.pop(key, None)
                if orphan is not None:
                    self._close_raw(orphan.connection)
            conn = super()._connect()
            self._owners[id(conn)] = threading.current_thread()
            return conn

    def _is_closed(self, conn: Any) -> bool:
        """Checked at check-out. Peewee asks the server (`SELECT 1`, a round trip and a transaction) every
        time; a worker hands its connections back whenever it idles, so ask only for a connection that sat
        unused for a while. A connection that died meanwhile fails its next statement, which the caller's
        retry policy handles like any lost connection."""
        if conn.closed:
            return True
        idle = time.time() - self._idle_since.get(id(conn), 0.0)
        if idle < TRUST_IDLE_SECONDS:
            status = self._adapter.txn_status(conn)
            if status == self._adapter.txn_idle:
                return False
        return bool(super()._is_closed(conn))

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        with self._pool_lock:
            self._owners.pop(id(conn), None)
            if not close_conn and len(self._connections) >= self._pool_cfg.max_idle:
                close_conn = True
            super()._close(conn, close_conn)
            if close_conn:
                self._idle_since.pop(id(conn), None)
            else:
                self._idle_since[id(conn)] = time.time()
