"""Throughput per queue (outcomes per time bucket), read incrementally from the database event log.

The log is shared by every process, so the chart counts the work of every worker, not only those in this
process; the counts are kept in memory, bounded by the retention.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from djobs.queue import Queue

# -- throughput stats --------------------------------------------------------------------------------------
#: Event-log kinds counted by the throughput chart, and the names the API gives them.
STAT_KINDS = {
    "job_started": "started",
    "job_completed": "completed",
    "job_failed": "failed",
    "job_retrying": "retried",
    "job_cancelled": "cancelled",
}
_KIND_NAMES = list(STAT_KINDS.values())
_KIND_INDEX = {k: i for i, k in enumerate(STAT_KINDS)}


def _base_bucket(retention: float) -> int:
    """The finest bucket kept in memory: 60 s for the default week, finer for short retentions so a
    retention of a few seconds still means something."""
    for size in (60, 30, 10, 5):
        if retention >= size * 100:
            return size
    return 1


class Throughput:
    """Per-queue counts of job outcomes in fixed time buckets, read incrementally from the event log.

    The first refresh looks back at most `initial_scan` events (and never before the retention horizon);
    later refreshes read only events newer than the cursor, plus a short window behind it, because an
    event id allocated before a slow commit can become visible after larger ids (as `follow_events` does).
    Buckets older than the retention are dropped, so memory is bounded by retention / bucket × queues.
    """

    PAGE = 1000
    LATE_WINDOW = 200

    def __init__(self, retention: float, max_read: int = 20_000, initial_scan: int = 200_000) -> None:
        self.retention = retention
        self.base = _base_bucket(retention)
        self.max_read = max_read
        self.initial_scan = initial_scan
        self.counts: dict[tuple[str, int], list[int]] = {}
        self.cursor: int | None = None
        self.first_id = 0  # events at or below this id were never looked at (initial_scan)
        self.seen: set[int] = set()
        self.covered_from: float | None = None
        self.lock = threading.Lock()

    def refresh(self, queue: Queue, now: float) -> bool:
        """Read new events; True when the cursor has reached the newest event (False: still catching up
        on a big log, `max_read` events at a time)."""
        horizon = now - self.retention
        since = datetime.fromtimestamp(horizon, UTC)
        latest = queue.latest_event_id()
        if self.cursor is not None and latest < self.cursor - self.LATE_WINDOW:
            self.cursor = None  # the log was emptied or replaced (a fresh database): start again
            self.counts.clear()
            self.seen.clear()
        if self.cursor is None:
            self.cursor = self.first_id = max(0, latest - self.initial_scan)
            self.covered_from = horizon if self.cursor == 0 else None
        low = max(self.first_id, self.cursor - self.LATE_WINDOW)
        if low < self.cursor:  # ids at or below the cursor that committed after the last read
            late = queue.events_since(low, limit=self.LATE_WINDOW, since=since)
            self._count([ev for ev in late if ev.id <= self.cursor], horizon)
        read = 0
        while read < self.max_read:
            limit = min(self.PAGE, self.max_read - read)
            page = queue.events_since(self.cursor, limit=limit, since=since)
            self._count(page, horizon)
            read += len(page)
            if page:
                self.cursor = max(self.cursor, page[-1].id)
            if len(page) < limit:
                # Everything up to `latest` has been seen (or is older than the horizon): jump there, so
                # the next read does not walk old rows the `since` filter skips.
                self.cursor = max(self.cursor, latest)
                break
        floor = self.cursor - self.LATE_WINDOW
        self.seen = {i for i in self.seen if i > floor}
        for key in [k for k in self.counts if k[1] + self.base <= horizon]:
            del self.counts[key]
        if self.covered_from is not None:
            self.covered_from = max(self.covered_from, horizon)
        return self.cursor >= latest

    def _count(self, events: Sequence[Any], horizon: float) -> None:
        for ev in events:
            if ev.id in self.seen:
                continue
            self.seen.add(ev.id)
            ts = ev.timestamp.timestamp()
            if self.covered_from is None:
                self.covered_from = ts
            idx = _KIND_INDEX.get(ev.kind)
            if idx is None or ts < horizon:
                continue
            key = (ev.queue or "", int(ts // self.base) * self.base)
            row = self.counts.get(key)
            if row is None:
                row = self.counts[key] = [0] * len(STAT_KINDS)
            row[idx] += 1

    def series(self, window: float, bucket: int, now: float, only_queue: str | None) -> dict[str, Any]:
        """Dense per-queue series of `window` seconds in `bucket`-second steps, newest bucket last."""
        points = math.ceil(window / bucket)
        end = (int(now // bucket) + 1) * bucket
        begin = end - points * bucket
        per_queue: dict[str, list[list[int]]] = {}
        for (qname, ts), row in self.counts.items():
            if ts < begin or (only_queue is not None and qname != only_queue):
                continue
            rows = per_queue.setdefault(qname, [[0] * len(STAT_KINDS) for _ in range(points)])
            slot = rows[(ts - begin) // bucket]
            for i, n in enumerate(row):
                slot[i] += n
        queues: dict[str, Any] = {}
        for qname in sorted(per_queue):
            rows = per_queue[qname]
            totals = [sum(r[i] for r in rows) for i in range(len(STAT_KINDS))]
            queues[qname] = {
                "totals": dict(zip(_KIND_NAMES, totals, strict=True)),
                "series": [
                    {"t": _iso(begin + i * bucket), **dict(zip(_KIND_NAMES, r, strict=True))}
                    for i, r in enumerate(rows)
                ],
            }
        return {
            "kinds": _KIND_NAMES,
            "bucket_seconds": bucket,
            "window_seconds": window,
            "retention_seconds": self.retention,
            "from": _iso(begin),
            "to": _iso(end),
            "covered_from": _iso(self.covered_from) if self.covered_from is not None else None,
            "queues": queues,
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
