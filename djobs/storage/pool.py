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
The pool itself is in pgpool.py, imported only when a PostgreSQL database is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from djobs.retry import to_seconds


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
