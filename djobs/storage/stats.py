"""Counts for dashboards, metrics and health: by queue and status, throughput, lag."""

from __future__ import annotations

from typing import TYPE_CHECKING

from djobs.storage import records
from djobs.storage.base import StorageBase
from djobs.storage.dialect import IS_CLAIMABLE, NOT_HOT
from djobs.storage.errors import operation

if TYPE_CHECKING:
    from djobs.info import QueueStats


#: Jobs by queue and status, from three partial indexes (none holds every job: it would cost each insert and
#: claim an entry): the claim's (pending, retrying and waiting jobs together, status ''), the running jobs',
#: and the one of every other status. One statement, so one snapshot: the parts add up.
_COUNTS = (
    f"SELECT queue, '', COUNT(*) FROM djobs_jobs WHERE {IS_CLAIMABLE} GROUP BY queue UNION ALL "
    "SELECT queue, 'running', COUNT(*) FROM djobs_jobs WHERE status = 'running' GROUP BY queue UNION ALL "
    f"SELECT queue, status, COUNT(*) FROM djobs_jobs WHERE {NOT_HOT} GROUP BY queue, status"
)


class StatsOps(StorageBase):
    @operation(read=True)
    def queue_stats(self) -> list[QueueStats]:
        from djobs.info import QueueStats

        counts: dict[str, dict[str, int]] = {}
        for q, status, n in self._indexed(_COUNTS):
            counts.setdefault(q, {})[status] = int(n)
        for by_status in counts.values():  # pending: the claimable jobs that are not retrying or waiting
            claimable = by_status.pop("", 0) - by_status.get("retrying", 0) - by_status.get("waiting", 0)
            if claimable > 0:
                by_status["pending"] = claimable
        recent = {
            q: int(n)
            for q, n in self._ex(
                "SELECT queue, COUNT(*) FROM djobs_jobs WHERE status = 'completed' AND completed_at >= {stable_now} - 60 "
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
        rows = self._indexed(
            f"SELECT queue, {{now}} - MIN(run_at) FROM djobs_jobs WHERE {IS_CLAIMABLE} AND status <> 'waiting' "
            "AND run_at <= {now} GROUP BY queue"  # the claim's index: its condition said as it says it
        )
        return {r[0]: max(0.0, float(r[1])) for r in rows}
