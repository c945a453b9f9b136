"""Schedules: stored so any scheduler fires them, each fire time claimed (compare-and-set on `next_fire`) in
the same transaction as its enqueue, so any number of schedulers fire it exactly once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from djobs import codec, validate
from djobs.jobs import NewJob
from djobs.storage import records
from djobs.storage.base import StorageBase
from djobs.storage.errors import operation
from djobs.storage.jobs import _INSERT, insert_params

if TYPE_CHECKING:
    from djobs.info import ScheduleInfo


class ScheduleOps(StorageBase):
    @operation
    def upsert_schedule(
        self,
        name: str,
        job: str,
        spec: str,
        args_json: str,
        queue: str,
        priority: int,
        retries: int,
        next_after: Callable[[float], float],
        source: str = "api",
    ) -> None:
        """Create or update a schedule. A new one, or one whose spec changed, fires next at
        `next_after(now)` (never at start-up); an unchanged one keeps its next fire time."""
        validate.name("schedule name", name)
        validate.name("job type", job)
        validate.name("queue name", queue)
        validate.int32("priority", priority)
        validate.int32("retries", retries, minimum=0)
        validate.json_depth("args", args_json)
        if source not in ("api", "config"):
            raise ValueError(f"schedule source must be 'api' or 'config', got {source!r}")
        with self.tx():
            now = float(self._ex("SELECT {now}").fetchone()[0])
            row = self._ex("SELECT spec FROM djobs_schedules WHERE name = ?", (name,)).fetchone()
            if row is None:
                self._ex(
                    "INSERT INTO djobs_schedules (name, job, spec, args, queue, priority, retries, paused, "
                    "next_fire, created_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, {now}, ?)",
                    (name, job, spec, args_json, queue, priority, retries, next_after(now), source),
                )
            else:
                fire = (next_after(now),) if row[0] != spec else ()
                self._ex(
                    "UPDATE djobs_schedules SET job = ?, spec = ?, args = ?, queue = ?, priority = ?, retries = ?, "
                    "source = ?" + (", next_fire = ?" if fire else "") + " WHERE name = ?",
                    (job, spec, args_json, queue, priority, retries, source, *fire, name),
                )
            self._notify("djobs_control")
        self.control_local()

    @operation
    def delete_schedule(self, name: str) -> bool:
        with self.tx():
            n = self._ex("DELETE FROM djobs_schedules WHERE name = ?", (name,)).rowcount
            if n:
                self._event("schedule_deleted", None, None, None, codec.dumps({"schedule": name}))
        return bool(n)

    @operation(read=True)
    def schedules(self) -> list[ScheduleInfo]:
        from djobs.info import ScheduleInfo

        rows = self._ex(
            "SELECT name, job, spec, args, queue, priority, paused, last_fire, next_fire, pause_reason, source "
            "FROM djobs_schedules ORDER BY name"
        ).fetchall()
        out = []
        for row in rows:
            tz = row[2].split(" tz=", 1)[1] if " tz=" in row[2] else None
            out.append(
                ScheduleInfo(
                    name=row[0], job=row[1], spec=row[2], args=records.json_value(row[3]), queue=row[4],
                    priority=int(row[5]), timezone=tz, paused=bool(row[6]), last_fire=records.when(row[7]),
                    next_fire=None if row[6] else records.when(row[8]), pause_reason=row[9], source=row[10] or "api",
                )
            )  # fmt: skip
        return out

    @operation
    def set_schedule_paused(
        self, name: str, paused: bool, reason: str | None = None, next_after: Callable[[str, float], float] | None = None
    ) -> bool:
        """Pause, or resume (it then fires next at `next_after(spec, now)`: paused fires are skipped)."""
        validate.text("pause reason", reason)
        with self.tx():
            if paused:
                n = self._ex(
                    "UPDATE djobs_schedules SET paused = 1, paused_at = {now}, pause_reason = ? WHERE name = ?",
                    (reason, name),
                ).rowcount
                data = codec.dumps({"schedule": name, "reason": reason})
            else:
                row = self._ex("SELECT spec, {now} FROM djobs_schedules WHERE name = ?", (name,)).fetchone()
                if row is None:
                    return False
                nxt = next_after(row[0], float(row[1])) if next_after else None
                n = self._ex(
                    "UPDATE djobs_schedules SET paused = 0, paused_at = NULL, pause_reason = NULL, "
                    "next_fire = COALESCE(?, next_fire) WHERE name = ?",
                    (nxt, name),
                ).rowcount
                data = codec.dumps({"schedule": name})
            if n:
                self._event("schedule_paused" if paused else "schedule_resumed", None, None, None, data)
                self._notify("djobs_control")
        return bool(n)

    @operation(read=True)
    def due_schedules(self) -> list[tuple[Any, ...]]:
        """(name, job, spec, args JSON, queue, priority, retries, next_fire, now) of schedules due now."""
        rows = self._ex(
            "SELECT name, job, spec, args, queue, priority, retries, next_fire, {now} FROM djobs_schedules "
            "WHERE paused = 0 AND next_fire <= {now}"
        ).fetchall()
        return [tuple(r) for r in rows]

    @operation(read=True)
    def next_schedule_fire(self) -> float | None:
        row = self._ex("SELECT MIN(next_fire) FROM djobs_schedules WHERE paused = 0").fetchone()
        return None if row[0] is None else float(row[0])

    @operation
    def fire_schedule(self, name: str, expected: float, fire: float, nxt: float, job: NewJob) -> bool:
        """Claim fire time `fire` of a schedule (only if its next fire is still `expected`) and enqueue its
        job, in one transaction: exactly once however many schedulers race."""
        validate.new_job(job)
        with self.tx():
            won = self._ex(
                "UPDATE djobs_schedules SET last_fire = ?, next_fire = ? WHERE name = ? AND next_fire = ? AND paused = 0",
                (fire, nxt, name, expected),
            ).rowcount
            if won:
                self._ex(_INSERT, insert_params(job))
                self._event(
                    "schedule_fired", None, job.queue, None, codec.dumps({"schedule": name, "fire_time": fire, "job_id": job.id})
                )
        if won:
            self.wake_local()
        return bool(won)
