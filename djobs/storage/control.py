"""Pause, resume and cancel: jobs and queues. Each change and its event row commit together, and workers
elsewhere hear of it through NOTIFY on PostgreSQL (their own checks otherwise)."""

from __future__ import annotations

from djobs import codec, validate
from djobs.jobs import Job, PauseMode
from djobs.storage import records
from djobs.storage.base import StorageBase
from djobs.storage.dialect import TERMINAL
from djobs.storage.errors import operation

_CANCEL_TREE = (
    "WITH RECURSIVE t(id) AS (SELECT CAST(? AS VARCHAR(36)) UNION ALL "
    "SELECT j.id FROM djobs_jobs j JOIN t ON j.parent_id = t.id) "
    "UPDATE djobs_jobs SET status = 'cancelled', completed_at = {now}, updated_at = {now}, "
    "locked_by = NULL, pause_requested = 0, last_error = COALESCE(?, last_error) "
    f"WHERE id IN (SELECT id FROM t) AND status NOT IN {TERMINAL} RETURNING id, queue, fanout_id"
)


class ControlOps(StorageBase):
    # -- jobs ----------------------------------------------------------------------------------------------
    @operation
    def pause_job(self, job_id: str, mode: PauseMode, reason: str | None) -> tuple[bool, bool]:
        """Pending/retrying/waiting jobs become paused. A running job: graceful lets it finish (a retry it
        needs then waits paused); aggressive pauses it at once with its attempt refunded (its handler is
        cancelled by whoever runs it). Returns (changed, taken from a running worker)."""
        validate.text("pause reason", reason)
        taken = False
        with self.tx():
            n = self._ex(
                "UPDATE djobs_jobs SET paused_from = status, status = 'paused', paused_at = {now}, "
                "pause_reason = ?, updated_at = {now} WHERE id = ? AND status IN ('pending', 'retrying', 'waiting')",
                (reason, job_id),
            ).rowcount
            if not n and mode == PauseMode.AGGRESSIVE:
                n = self._ex(
                    "UPDATE djobs_jobs SET status = 'paused', paused_from = 'pending', paused_at = {now}, "
                    "pause_reason = ?, attempt = attempt - 1, refunds = refunds + 1, locked_by = NULL, held = 0, "
                    "updated_at = {now} WHERE id = ? AND status = 'running'",
                    (reason, job_id),
                ).rowcount
                taken = bool(n)
            elif not n:
                n = self._ex(
                    "UPDATE djobs_jobs SET pause_requested = 1, pause_reason = ?, updated_at = {now} "
                    "WHERE id = ? AND status = 'running'",
                    (reason, job_id),
                ).rowcount
            if n:
                self._event_for(job_id, "job_paused", codec.dumps({"mode": mode.value, "reason": reason}))
                if taken:
                    self._notify("djobs_control")
        if taken:
            self.taken([job_id])
        return bool(n), taken

    def _event_for(self, job_id: str, kind: str, data: str | None) -> None:
        self._ex(
            "INSERT INTO djobs_events (ts, kind, job_id, queue, worker_id, data) "
            "SELECT {now}, ?, id, queue, NULL, ? FROM djobs_jobs WHERE id = ?",
            (kind, data, job_id),
        )

    @operation
    def resume_job(self, job_id: str) -> bool:
        with self.tx():
            n = self._ex(
                "UPDATE djobs_jobs SET status = COALESCE(paused_from, 'pending'), paused_from = NULL, "
                "paused_at = NULL, pause_reason = NULL, pause_requested = 0, updated_at = {now} "
                "WHERE id = ? AND status = 'paused'",
                (job_id,),
            ).rowcount
            n += self._ex(
                "UPDATE djobs_jobs SET pause_requested = 0, pause_reason = NULL, updated_at = {now} "
                "WHERE id = ? AND status = 'running' AND pause_requested = 1",
                (job_id,),
            ).rowcount
            if n:
                self._event_for(job_id, "job_resumed", None)
                self._notify()
        if n:
            self.wake_local()
        return bool(n)

    @operation(read=True)
    def job_pause_state(self, job_id: str) -> bool | None:
        """True if paused (or a graceful pause is pending), False if not, None if there is no such job."""
        row = self._ex("SELECT status, pause_requested FROM djobs_jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else (row[0] == "paused" or bool(row[1]))

    @operation(read=True)
    def paused_jobs(self, queue: str | None = None) -> list[Job]:
        where, params = ("AND queue = ? ", (queue,)) if queue is not None else ("", ())
        rows = self._ex(f"SELECT {{cols}} FROM djobs_jobs WHERE status = 'paused' {where}ORDER BY paused_at", params)
        return [records.job(r) for r in rows.fetchall()]

    @operation
    def cancel_tree(self, job_id: str, reason: str | None) -> list[tuple[str, str, str | None]]:
        """Cancel a job and its whole subtree, with their events; (id, queue, fan-out id) of each."""
        validate.text("cancel reason", reason)
        with self.tx():
            rows = [(r[0], r[1], r[2]) for r in self._ex(_CANCEL_TREE, (job_id, reason)).fetchall()]
            data = codec.dumps({"reason": reason})
            self._events_many([("job_cancelled", jid, q, None, data) for jid, q, _ in rows])
            if rows:
                self._notify("djobs_control")
        self.taken([r[0] for r in rows])
        return rows

    # -- queues --------------------------------------------------------------------------------------------
    @operation
    def set_queue_paused(self, name: str, paused: bool, reason: str | None = None) -> None:
        """Stored in the database and honoured inside every worker's claim; running jobs finish."""
        validate.name("queue name", name)
        validate.text("pause reason", reason)
        with self.tx():
            if paused:
                self._ex(
                    "INSERT INTO djobs_queues (name, paused, paused_at, pause_reason) VALUES (?, 1, {now}, ?) "
                    "ON CONFLICT (name) DO UPDATE SET paused = 1, paused_at = excluded.paused_at, "
                    "pause_reason = excluded.pause_reason",
                    (name, reason),
                )
                self._event("queue_paused", None, name, None, codec.dumps({"reason": reason}))
            else:
                self._ex(
                    "UPDATE djobs_queues SET paused = 0, paused_at = NULL, pause_reason = NULL WHERE name = ?", (name,)
                )
                self._event("queue_resumed", None, name, None, None)
                self._notify()
        if not paused:
            self.wake_local()

    @operation(read=True)
    def queue_paused(self, name: str) -> bool:
        row = self._ex("SELECT paused FROM djobs_queues WHERE name = ?", (name,)).fetchone()
        return bool(row and row[0])

    @operation(read=True)
    def paused_queues(self) -> list[str]:
        return [r[0] for r in self._ex("SELECT name FROM djobs_queues WHERE paused = 1 ORDER BY name").fetchall()]
