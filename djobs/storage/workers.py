"""Worker rows (registration, heartbeat, remote pause), the rescuer's statement, the registry of job types
workers serve, and the leadership lease."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from djobs import codec
from djobs.jobs import PauseMode
from djobs.storage import records
from djobs.storage.base import Row, StorageBase
from djobs.storage.claims import _RELEASE_ALL, REFUND_ERROR
from djobs.storage.dialect import MAX_LOST_REFUNDS
from djobs.storage.errors import operation

if TYPE_CHECKING:
    from djobs.info import JobTypeInfo, WorkerInfo

_D = "DOUBLE PRECISION"
#: A silent worker's row is kept (listed as dead) this long, then forgotten.
FORGET_AFTER = 3600.0


def _reap_sql() -> str:
    """Running jobs whose worker has been silent for the stale age go back to pending, or fail once their
    attempts are spent (attempts are counted at claim and not refunded here), except a job that never
    started (held in the lost worker's prefetch line): its attempt is given back, a bounded number of
    times."""
    refund = f"(held = 1 AND lost < {MAX_LOST_REFUNDS})"
    spent = f"(NOT {refund} AND attempt > max_retries)"
    return (
        "UPDATE djobs_jobs SET "
        f"status = CASE WHEN {spent} THEN 'failed' ELSE 'pending' END, "
        f"last_error = CASE WHEN {spent} THEN ? ELSE last_error END, "
        f"completed_at = CASE WHEN {spent} THEN {{now}} ELSE NULL END, "
        f"attempt = CASE WHEN {refund} THEN attempt - 1 ELSE attempt END, "
        f"lost = CASE WHEN {refund} THEN lost + 1 ELSE lost END, held = 0, "
        "locked_by = NULL, updated_at = {now} "
        "WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM djobs_workers w "
        f"WHERE w.id = djobs_jobs.locked_by AND w.stopped_at IS NULL AND w.heartbeat_at >= {{now}} - CAST(? AS {_D})) "
        "RETURNING id, status, queue, type, fanout_id"
    )


class WorkerOps(StorageBase):
    @operation
    def register_worker(self, worker_id: str, host: str, pid: int, queues: dict[str, int], handlers: list[str]) -> None:
        with self.tx():
            self._ex(
                "INSERT INTO djobs_workers (id, host, pid, queues, handlers, started_at, heartbeat_at, running, "
                "paused) VALUES (?, ?, ?, ?, ?, {now}, {now}, 0, 0) ON CONFLICT (id) DO UPDATE SET "
                "heartbeat_at = excluded.heartbeat_at, handlers = excluded.handlers, stopped_at = NULL",
                (worker_id, host, pid, codec.dumps(queues), codec.dumps(handlers)),
            )

    @operation
    def heartbeat_and_lease(
        self, worker_id: str, running: int, leases: list[tuple[str, float]] = ()  # type: ignore[assignment]
    ) -> tuple[bool, set[str]]:
        """Refresh the worker's heartbeat (what the rescuer reads) and take or renew leases (name, ttl), in
        one transaction: an idle worker costs one transaction per heartbeat. Returns (the worker's row
        exists, the leases it holds)."""
        won: set[str] = set()
        with self.tx():
            n = self._ex("UPDATE djobs_workers SET heartbeat_at = {now}, running = ? WHERE id = ?", (running, worker_id))
            for name, ttl in leases:
                if self._lease(name, worker_id, ttl):
                    won.add(name)
        return n.rowcount > 0, won

    @operation(read=True)
    def worker_control(self, worker_id: str) -> tuple[bool, str | None] | None:
        row = self._ex("SELECT paused, pause_mode FROM djobs_workers WHERE id = ?", (worker_id,)).fetchone()
        return (bool(row[0]), row[1]) if row else None

    @operation
    def set_worker_pause(
        self, worker_id: str, paused: bool, mode: str | None, reason: str | None, event: bool = True
    ) -> tuple[bool, list[str]]:
        """Pause or resume a worker row (with its event). Aggressive pause releases its running jobs
        (attempt refunded) in the same transaction, so the jobs are free at once whatever the worker does."""
        released: list[str] = []
        with self.tx():
            if paused:
                n = self._ex(
                    "UPDATE djobs_workers SET paused = 1, pause_mode = ?, pause_reason = ?, paused_at = {now} WHERE id = ?",
                    (mode, reason, worker_id),
                ).rowcount
                if n and mode == PauseMode.AGGRESSIVE.value:
                    released = [r[0] for r in self._ex(_RELEASE_ALL, (REFUND_ERROR, worker_id)).fetchall()]
            else:
                n = self._ex(
                    "UPDATE djobs_workers SET paused = 0, pause_mode = NULL, pause_reason = NULL, paused_at = NULL "
                    "WHERE id = ?",
                    (worker_id,),
                ).rowcount
            if n and event:
                data = codec.dumps({"mode": mode, "reason": reason}) if paused else None
                self._event("worker_paused" if paused else "worker_resumed", None, None, worker_id, data)
            if n:
                self._notify("djobs_control")
                if not paused:
                    self._notify()
        self.taken(released)
        return n > 0, released

    @operation
    def stop_worker(self, worker_id: str) -> None:
        with self.tx():
            self._ex("UPDATE djobs_workers SET stopped_at = {now}, running = 0 WHERE id = ?", (worker_id,))
            self._ex("DELETE FROM djobs_leases WHERE holder = ?", (worker_id,))

    @operation(read=True)
    def workers(self, include_dead: bool = False, stale_age: float = 30.0) -> list[WorkerInfo]:
        from djobs.info import WorkerInfo

        rows = self._ex(
            "SELECT id, host, pid, queues, handlers, paused, pause_mode, pause_reason, paused_at, started_at, "
            "heartbeat_at, running, stopped_at, {now} FROM djobs_workers ORDER BY started_at"
        ).fetchall()
        out = []
        for row in rows:
            alive = row[12] is None and float(row[10]) >= float(row[13]) - stale_age
            if not alive and not include_dead:
                continue
            queues = records.json_value(row[3])
            handlers = records.json_value(row[4])
            out.append(
                WorkerInfo(
                    id=row[0], host=row[1], pid=int(row[2]), queues=queues if isinstance(queues, dict) else {},
                    handlers=handlers if isinstance(handlers, list) else [], paused=bool(row[5]),
                    pause_mode=PauseMode(row[6]) if row[6] in ("graceful", "aggressive") else None,
                    pause_reason=row[7], paused_at=records.when(row[8]), started_at=records.when(row[9]),
                    last_heartbeat_at=records.when(row[10]), running=int(row[11] or 0), alive=alive,
                )
            )  # fmt: skip
        return out

    @operation
    def reap(self, stale_age: float, error: str) -> list[Row]:
        """Recover the jobs of workers silent for `stale_age`: (id, new status, queue, type, fan-out id),
        with their event rows; forget workers silent for an hour."""
        with self.tx():
            rows = self._ex(_reap_sql(), (error, stale_age)).fetchall()
            self._ex(f"DELETE FROM djobs_workers WHERE heartbeat_at < {{now}} - {FORGET_AFTER}")
            self._events_many(
                [("job_failed" if st == "failed" else "job_recovered", jid, q, None, None) for jid, st, q, _, _ in rows]
            )
            if rows:
                self._notify()
        return [tuple(r) for r in rows]

    # -- job types ---------------------------------------------------------------------------------------
    @operation
    def register_types(self, types: list[tuple[str, str, int, int, float | None, str | None]]) -> None:
        """(name, queue, retries, priority, timeout, options JSON) of the handlers a worker serves."""
        if not types:
            return
        with self.tx():
            self._many(
                self._q(
                    "INSERT INTO djobs_job_types (name, queue, retries, priority, timeout, options, seen_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, {now}) ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, "
                    "retries = excluded.retries, priority = excluded.priority, timeout = excluded.timeout, "
                    "options = excluded.options, seen_at = excluded.seen_at"
                ),
                types,
            )

    @operation(read=True)
    def known_types(self, name: str | None = None) -> list[JobTypeInfo]:
        from djobs.info import JobTypeInfo

        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        rows = self._ex(
            f"SELECT name, queue, retries, priority, timeout, seen_at FROM djobs_job_types {where} ORDER BY name",
            params,
        ).fetchall()
        return [JobTypeInfo(r[0], r[1], int(r[2]), int(r[3]), r[4], records.when(r[5])) for r in rows]

    @operation(read=True)
    def type_options(self, name: str) -> dict[str, Any] | None:
        row = self._ex("SELECT options FROM djobs_job_types WHERE name = ?", (name,)).fetchone()
        value = records.json_value(row[0]) if row else None
        return value if isinstance(value, dict) else None

    # -- leadership ----------------------------------------------------------------------------------------
    @operation
    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease `name` for `ttl` seconds; False while another holder's lease runs."""
        with self.tx():
            return self._lease(name, holder, ttl)

    def _lease(self, name: str, holder: str, ttl: float) -> bool:
        row = self._ex(
            "INSERT INTO djobs_leases (name, holder, acquired_at, expires_at) VALUES "
            f"(?, ?, {{now}}, {{now}} + CAST(? AS {_D})) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "acquired_at = CASE WHEN djobs_leases.holder = excluded.holder THEN djobs_leases.acquired_at "
            "ELSE excluded.acquired_at END, expires_at = excluded.expires_at "
            "WHERE djobs_leases.holder = excluded.holder OR djobs_leases.expires_at < {now} RETURNING holder",
            (name, holder, ttl),
        ).fetchone()
        return row is not None and row[0] == holder

    @operation
    def release_lease(self, name: str, holder: str) -> None:
        with self.tx():
            self._ex("DELETE FROM djobs_leases WHERE name = ? AND holder = ?", (name, holder))

    @operation(read=True)
    def lease_holder(self, name: str) -> tuple[str, float] | None:
        """(holder, seconds until expiry) of a running lease, or None."""
        row = self._ex(
            "SELECT holder, expires_at - {now} FROM djobs_leases WHERE name = ? AND expires_at >= {now}", (name,)
        ).fetchone()
        return (row[0], float(row[1])) if row else None
