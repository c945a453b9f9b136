"""Failures you can act on, in bulk: requeueing failed jobs, and the retention of finished jobs.

Both work in bounded batches (one short transaction each), so requeueing a hundred thousand failed jobs or
deleting a month of history never holds the write lock for long while workers claim and finish jobs.
"""

from __future__ import annotations

import json
from typing import Any

from djobs.errors import DuplicateJob
from djobs.jobs import Retention
from djobs.storage.errors import operation
from djobs.storage.jobs import EXPIRED, RETRY_SET, JobOps

#: The djobs_meta key holding the retention settings (a JSON object of seconds or null per status).
RETENTION_KEY = "retention"
BATCH = 500


class FlowOps(JobOps):
    @operation
    def requeue_failed(
        self,
        queue: str | None = None,
        type: str | None = None,  # noqa: A002
        since: float | None = None,
        batch: int = BATCH,
    ) -> int:
        """Retry every failed job matching the filters (failed at or after epoch `since`), `batch` per
        transaction; how many were requeued. A job whose unique key another job holds now stays failed."""
        where = "status = 'failed'"
        params: list[Any] = []
        for col, val in (("queue", queue), ("type", type)):
            if val is not None:
                where += f" AND {col} = ?"
                params.append(val)
        if since is not None:
            where += " AND completed_at >= ?"
            params.append(since)
        total, after = 0, ""
        while True:
            with self.tx():
                rows = self._ex(
                    f"SELECT id, unique_key, queue FROM djobs_jobs WHERE {where} AND id > ? ORDER BY id LIMIT ?",
                    (*params, after, batch),
                ).fetchall()
                plain = [(r[0], r[2]) for r in rows if r[1] is None]
                if plain:
                    marks = self.dialect.marks(len(plain))
                    total += int(
                        self._ex(
                            RETRY_SET + f"WHERE id IN ({marks}) AND status = 'failed'", [i for i, _ in plain]
                        ).rowcount
                    )
                    self._events_many([("job_requeued", i, q, None, None) for i, q in plain])
                    self._notify()
            # Jobs with a unique key go one by one: another job may hold the key (DuplicateJob), and two
            # failed jobs of one key cannot both come back.
            for r in rows:
                if r[1] is not None:
                    try:
                        total += int(self.retry_job(r[0]))
                    except DuplicateJob:
                        pass
            if plain:
                self.wake_local()
            if len(rows) < batch:
                return total
            after = rows[-1][0]

    @operation
    def set_retention(self, retention: Retention) -> None:
        value = json.dumps(retention.to_json())
        with self.tx():
            if not self._ex(
                'UPDATE djobs_meta SET value = ? WHERE "key" = ?', (value, RETENTION_KEY)
            ).rowcount:
                self._ex('INSERT INTO djobs_meta ("key", value) VALUES (?, ?)', (RETENTION_KEY, value))

    @operation(read=True)
    def retention(self) -> Retention:
        """The stored retention; keep-forever for every status when none was ever set (or it is unreadable)."""
        row = self._ex('SELECT value FROM djobs_meta WHERE "key" = ?', (RETENTION_KEY,)).fetchone()
        try:
            data: Any = json.loads(row[0]) if row else {}
        except ValueError:
            return Retention()
        if not isinstance(data, dict):
            return Retention()
        return Retention(*(_age(data.get(s)) for s in ("completed", "failed", "cancelled")))

    @operation
    def apply_retention(self, retention: Retention, batch: int = BATCH) -> dict[str, int]:
        """Delete finished jobs older than the retention of their status, with their checkpoints, signals,
        fan-out records and events, `batch` jobs per transaction; how many per status. A status with
        nothing to delete costs one index probe."""
        done: dict[str, int] = {}
        for status, age in (("completed", retention.completed), ("failed", retention.failed),
                            ("cancelled", retention.cancelled)):  # fmt: skip
            if age is None:
                continue
            n = 0
            while True:
                with self.tx():
                    ids = [
                        r[0]
                        for r in self._ex(
                            # The status written out (one of three): a statement that says it is one the
                            # finished jobs' partial index holds in every plan, generic ones too.
                            f"SELECT id FROM djobs_jobs WHERE status = '{status}' AND {EXPIRED} LIMIT ?",
                            (age, batch),
                        )
                    ]
                    n += self._delete_rows(ids)
                if len(ids) < batch:
                    break
            if n:
                done[status] = n
        return done


def _age(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        else None
    )
