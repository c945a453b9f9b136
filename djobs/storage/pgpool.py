"""Peewee's PostgreSQL pool with the limits PoolConfig promises (see pool.py). Its own module, imported only
when a PostgreSQL database is opened: `djobs enqueue` on SQLite skips playhouse.pool."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from peewee import Psycopg3Adapter
from playhouse.pool import PooledPostgresqlDatabase

from djobs.storage.pool import PoolConfig

#: A pooled connection idle for less than this is reused without a round trip to check it.
TRUST_IDLE_SECONDS = 30.0
#: How long closing a connection waits for a statement another thread is running on it (see `_close_raw`).
CLOSE_WAIT_SECONDS = 5.0

log = logging.getLogger("djobs.storage")


class _Adapter(Psycopg3Adapter):
    def connect(self, db: Any, **params: Any) -> Any:
        conn = super().connect(db, **params)
        if db.jit_off:
            # PostgreSQL compiles a statement whose estimated cost passes `jit_above_cost` to machine code,
            # each time it runs. The claim statements' plans pass it once the jobs table is big (their
            # estimates assume a pick might take a tenth of the due jobs): with 200,000 jobs waiting, a
            # per-key claim spent ~100 ms compiling a plan that then ran in 1 ms. Nothing djobs sends runs
            # long enough to repay a compilation.
            conn.autocommit = True  # peewee sets it next anyway; a SET alone is one round trip, no COMMIT
            conn.execute("SET jit = off")
        return conn


class DjobsPooledPostgres(PooledPostgresqlDatabase):
    """Peewee's pool plus the two limits it lacks (idle count and idle time), on connections that never
    JIT-compile a statement (unless the URL's `options` set `jit` themselves)."""

    djobs_pool = True  # what storage/base.py asks, so it need not import this module on SQLite
    psycopg3_adapter = _Adapter

    def __init__(self, database: str, pool: PoolConfig, *, jit_off: bool = True, **kwargs: Any) -> None:
        self.jit_off = jit_off
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

    def release_idle(self) -> None:
        """Hand this thread's connection back before a long idle wait: pooled if the pool holds no idle
        connection yet, closed otherwise. An idle worker's threads take turns on one connection, so keeping
        a second one open would only cost the server a backend per worker."""
        with self._pool_lock:
            spare = len(self._connections) >= 1
        if spare:
            conn = self.connection()
            self.manual_close()
            with self._pool_lock:
                self._idle_since.pop(id(conn), None)
        else:
            self.close()

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

    def _close_raw(self, conn: Any) -> None:
        """Close a connection once no statement runs on it. `close()` of the store closes every connection,
        those other threads hold too (a dashboard's reader mid-read, say), and psycopg frees a connection's C
        state on close without waiting: a thread still inside a statement on it then crashes the process
        (seen: a segmentation fault in the statement's preparation). psycopg runs each statement under the
        connection's lock, so closing under that lock waits for the statement to end; the thread's next
        statement finds the connection closed, an ordinary error. One still busy after CLOSE_WAIT_SECONDS
        (a statement stuck on a server gone silent) is left open rather than freed under it."""
        lock = getattr(conn, "lock", None)
        if lock is None:
            super()._close_raw(conn)
        elif lock.acquire(timeout=CLOSE_WAIT_SECONDS):
            try:
                super()._close_raw(conn)
            finally:
                lock.release()
        else:
            log.warning("a database connection still running a statement after %.0f s was left open, not closed "
                        "under it", CLOSE_WAIT_SECONDS)
