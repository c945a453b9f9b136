"""Counts for dashboards, metrics and health: by queue and status, throughput, lag."""

from __future__ import annotations

from typing import TYPE_CHECKING

from djobs.storage import records
from djobs.storage.base import StorageBase
from djobs.storage.errors import operation

if TYPE_CHECKING:
    from djobs.info import QueueStats


class StatsOps(StorageBase):
    @operation(read=True)
    def queue_stats(self) -> list[QueueStats]:
        from djobs.info import QueueStats

        counts: dict[str, dict[str, int]] = {}
        for q, status, n in self._ex("SELECT queue, status, COUNT(*) FROM djobs_jobs GROUP BY queue, status"):
            counts.setdefault(q, {})[status] = int(n)
        recent = {
            q: int(n)
            for q, n in self._ex(
                "SELECT queue, COUNT(*) FROM djobs_jobs WHERE status = 'completed' AND completed_at >= {now} - 60 "
                "GROUP BY queue"
            )
        }
        rows = self._ex("SELECT name, paused, paused_at, pause_reason FROM djobs_queues").fetchall()
        paused = {r[0]: r[1:] for r in rows}
        out = []
        for name in sorted({*counts, *paused}):
            p = paused.get(name, (0, None, None))
            out.append(
                QueueStats(
                    name=name, paused=bool(p[0]), paused_at=records.when(p[1]), pause_reason=p[2],
                    counts=counts.get(name, {}), completed_last_minute=recent.get(name, 0),
                )
            )  # fmt: skip
        return out

    @operation(read=True)
    def queue_lag(self) -> dict[str, float]:
        """Per queue with due pending jobs: seconds its oldest due job has waited (paused queues too)."""
        rows = self._ex(
            "SELECT queue, {now} - MIN(run_at) FROM djobs_jobs WHERE status IN ('pending', 'retrying') "
            "AND run_at <= {now} GROUP BY queue"
        ).fetchall()
        return {r[0]: max(0.0, float(r[1])) for r in rows}
