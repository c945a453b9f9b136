"""The database event log: what `djobs events --follow`, the dashboards and `inspect` read, from every
process. Bounded by age and row count (the trimmer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from djobs.storage import records
from djobs.storage.base import Row, StorageBase
from djobs.storage.errors import operation

if TYPE_CHECKING:
    from djobs.info import StoredEvent

_COLS = "SELECT id, ts, kind, job_id, queue, worker_id, data FROM djobs_events "


class EventOps(StorageBase):
    @operation
    def insert_events(self, rows: list[Row]) -> None:
        """(kind, job id, queue, worker id, data JSON) rows, in one transaction."""
        if rows:
            with self.tx():
                self._events_many(rows)

    @operation(read=True)
    def events_since(
        self,
        cursor: int = 0,
        limit: int = 100,
        job_id: str | None = None,
        queue: str | None = None,
        since: float | None = None,
    ) -> list[StoredEvent]:
        """Events with id > cursor, oldest first."""
        clauses, params = ["id > ?"], [int(cursor)]
        for clause, value in (("job_id = ?", job_id), ("queue = ?", queue), ("ts >= ?", since)):
            if value is not None:
                clauses.append(clause)
                params.append(value)  # type: ignore[arg-type]
        rows = self._ex(
            _COLS + f"WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?", (*params, max(0, min(int(limit), 2**62)))
        )
        return [records.event(r) for r in rows.fetchall()]

    @operation(read=True)
    def job_events(self, job_id: str, newest: int = 20) -> list[StoredEvent]:
        """The newest `newest` events of one job, oldest first."""
        rows = self._ex(_COLS + "WHERE job_id = ? ORDER BY id DESC LIMIT ?", (job_id, max(0, int(newest)))).fetchall()
        return [records.event(r) for r in reversed(rows)]

    @operation(read=True)
    def latest_event_id(self) -> int:
        return int(self._ex("SELECT MAX(id) FROM djobs_events").fetchone()[0] or 0)

    @operation
    def trim_events(self, max_age: float, max_rows: int, batch: int = 5000) -> int:
        """Delete events older than `max_age` seconds or beyond the newest `max_rows`, in batches, so a
        large backlog never holds the write lock for long."""
        total = 0
        top = int(self._ex("SELECT MAX(id) FROM djobs_events").fetchone()[0] or 0)
        floor = top - max_rows if max_rows > 0 else 0
        while True:
            with self.tx():
                # Two arms, each read in its index's order and bounded by the batch: one WHERE with an OR,
                # ordered by id, read the whole table whenever nothing was old enough. The age's cutoff by
                # `{stable_now}`, which bounds the scan of the `ts` index (see `dialect.PG_STABLE_NOW`: with
                # the volatile clock every event was read to find none old enough, 470 ms over a million); on
                # PostgreSQL the rows are then found by id, not by hashing the batch and reading every event.
                picked = (
                    "SELECT id FROM (SELECT id FROM djobs_events WHERE id <= ? ORDER BY id LIMIT ?) AS a UNION "
                    "SELECT id FROM (SELECT id FROM djobs_events WHERE ts < {stable_now} - CAST(? AS DOUBLE "
                    "PRECISION) ORDER BY ts LIMIT ?) AS b"
                )
                where = f"id = ANY(ARRAY({picked}))" if self.is_pg else f"id IN ({picked})"
                n = self._ex(f"DELETE FROM djobs_events WHERE {where}", (floor, batch, max_age, batch)).rowcount
            total += int(n)
            if n < batch:
                return total
