"""Waiting jobs: suspending a running job (fan-out, sleep, signal wait), deciding fan-outs, waking parents.

A waiting job holds no worker. Its `run_at` is when a claim may take it back: the wake-up time of a sleep or
of a signal wait's timeout, or WAIT_FOREVER when only an event wakes it (a fan-out's decision, a signal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from djobs.errors import OwnershipLost
from djobs.jobs import NewJob, Owner
from djobs.storage.base import StorageBase
from djobs.storage.dialect import OWNED, TERMINAL, WAIT_FOREVER
from djobs.storage.errors import operation
from djobs.storage.jobs import _INSERT, insert_params

_D = "DOUBLE PRECISION"
# The job waits (or pauses, if a graceful pause was requested while it ran), its attempt refunded: waiting
# is an outcome of the attempt, not a failure.
_SUSPEND = (
    "UPDATE djobs_jobs SET "
    "status = CASE WHEN pause_requested = 1 THEN 'paused' ELSE 'waiting' END, "
    "paused_from = CASE WHEN pause_requested = 1 THEN 'waiting' ELSE paused_from END, "
    "paused_at = CASE WHEN pause_requested = 1 THEN {now} ELSE paused_at END, "
    f"pause_requested = 0, attempt = attempt - 1, refunds = 0, locked_by = NULL, held = 0, "
    f"run_at = COALESCE(CAST(? AS {_D}), {WAIT_FOREVER!r}), wait_kind = ?, wait_signal = ?, updated_at = {{now}} "
    f"WHERE {OWNED}"
)
# Back to pending now, also when paused meanwhile (then it resumes as pending).
_WAKE = (
    "UPDATE djobs_jobs SET "
    "status = CASE WHEN status = 'waiting' THEN 'pending' ELSE status END, "
    "paused_from = CASE WHEN status = 'paused' AND paused_from = 'waiting' THEN 'pending' ELSE paused_from END, "
    "run_at = {now}, wait_kind = NULL, wait_signal = NULL, updated_at = {now} "
    "WHERE id = ? AND (status = 'waiting' OR (status = 'paused' AND paused_from = 'waiting'))"
)


class FanOutOps(StorageBase):
    @operation
    def suspend(
        self,
        owner: Owner,
        queue: str,
        kind: str,
        wake_at: float | None = None,
        signal: str | None = None,
        checkpoint: tuple[str, int, str, str] | None = None,
        event: tuple[str, str] | None = None,
        fanout: tuple[Any, ...] | None = None,
        sub_jobs: list[NewJob] | None = None,
    ) -> None:
        """One transaction: the running job waits (attempt refunded), with the checkpoint of the step that
        made it wait (key, index, name, value JSON), its event (kind, data JSON), and for a fan-out the
        fan-out row (id, parent_id, call_key, strategy, total, timeout seconds, cancel_on_parent_failure)
        and the sub-jobs. OwnershipLost if the job is no longer this worker's."""
        from djobs import validate

        validate.new_jobs(sub_jobs or [])
        with self.tx():
            o = (owner.job_id, owner.worker_id, owner.attempt)
            if self._ex(_SUSPEND, (wake_at, kind, signal, *o)).rowcount == 0:
                raise OwnershipLost(owner.job_id)
            if fanout is not None:
                self._ex(
                    "INSERT INTO djobs_fanouts (id, parent_id, call_key, strategy, total, timeout_at, "
                    f"cancel_on_parent_failure, created_at) VALUES (?, ?, ?, ?, ?, {{now}} + CAST(? AS {_D}), ?, {{now}})",
                    fanout,
                )
            if checkpoint is not None:
                key, index, name, value = checkpoint
                self._ex(
                    "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
                    "VALUES (?, ?, ?, ?, ?, NULL, {now}) ON CONFLICT (job_id, key) DO NOTHING",
                    (owner.job_id, key, index, name, value),
                )
            if sub_jobs:
                self._many(self._q(_INSERT), [insert_params(j) for j in sub_jobs])
            if event is not None:
                self._event(event[0], owner.job_id, queue, owner.worker_id, event[1])
            timed = fanout is not None and fanout[5] is not None
            if timed:
                self._notify("djobs_control")
        if sub_jobs:
            self.wake_local()
        if timed:
            self.control_local()

    @operation(read=True)
    def fanout_state(self, fanout_id: str) -> tuple[str | None, str] | None:
        """(decision or None while undecided, strategy), or None if the fan-out is gone (purged)."""
        row = self._ex("SELECT decided, strategy FROM djobs_fanouts WHERE id = ?", (fanout_id,)).fetchone()
        return (row[0], row[1]) if row else None

    @operation(read=True)
    def fanout_results(self, fanout_id: str) -> list[tuple[str, str, str | None, str | None, int]]:
        """(sub-job id, status, result JSON, last error, position) in submission order."""
        rows = self._ex(
            "SELECT id, status, result, last_error, fanout_pos FROM djobs_jobs WHERE fanout_id = ? ORDER BY fanout_pos",
            (fanout_id,),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], int(r[4] or 0)) for r in rows]

    @operation
    def evaluate_fanout(self, fanout_id: str, decide: Callable[[str, int, dict[str, int]], str | None]) -> str | None:
        """Decide a fan-out if its sub-jobs allow it and wake its parent. Runs in its own transaction with
        the fan-out row locked, so the last sub-job to finish always sees every other one finished."""
        with self.tx():
            row = self._ex(
                f"SELECT strategy, total, decided, parent_id FROM djobs_fanouts WHERE id = ?{self.dialect.for_update}",
                (fanout_id,),
            ).fetchone()
            if row is None or row[2] is not None:
                return None
            strategy, total, _, parent_id = row
            counts = dict(
                self._ex("SELECT status, COUNT(*) FROM djobs_jobs WHERE fanout_id = ? GROUP BY status", (fanout_id,))
            )
            outcome = decide(strategy, int(total), {str(k): int(v) for k, v in counts.items()})
            if outcome is None:
                return None
            self._ex("UPDATE djobs_fanouts SET decided = ? WHERE id = ?", (outcome, fanout_id))
            self._ex(_WAKE, (parent_id,))
            self._notify()
        self.wake_local()
        return outcome

    @operation
    def deadline_sweep(self) -> tuple[list[str], list[str], float | None, int]:
        """The deadline service's whole look, in one transaction: (fan-outs past their timeout, fan-outs
        whose sub-jobs all finished but that nobody decided, the next fan-out deadline, how many orphaned
        waiting parents were woken)."""
        with self.tx():
            timed_out, finished = self._fanouts_due()
            woken = self._resume_orphaned_waiters()
            row = self._ex("SELECT MIN(timeout_at) FROM djobs_fanouts WHERE decided IS NULL AND timeout_at IS NOT NULL")
            nxt = row.fetchone()[0]
        if woken:
            self.wake_local()
        return timed_out, finished, None if nxt is None else float(nxt), woken

    @operation(read=True)
    def fanouts_due(self) -> tuple[list[str], list[str]]:
        return self._fanouts_due()

    def _fanouts_due(self) -> tuple[list[str], list[str]]:
        timed_out = [
            r[0]
            for r in self._ex(
                "SELECT id FROM djobs_fanouts WHERE decided IS NULL AND timeout_at IS NOT NULL AND timeout_at <= {now}"
            )
        ]
        finished = [
            r[0]
            for r in self._ex(
                "SELECT f.id FROM djobs_fanouts f WHERE f.decided IS NULL AND NOT EXISTS "
                f"(SELECT 1 FROM djobs_jobs s WHERE s.fanout_id = f.id AND s.status NOT IN {TERMINAL})"
            )
        ]
        return timed_out, finished

    @operation(read=True)
    def next_fanout_deadline(self) -> float | None:
        """The earliest timeout of an undecided fan-out (epoch seconds), so the deadline service sleeps
        until exactly then instead of polling."""
        row = self._ex("SELECT MIN(timeout_at) FROM djobs_fanouts WHERE decided IS NULL AND timeout_at IS NOT NULL")
        value = row.fetchone()[0]
        return None if value is None else float(value)

    @operation(read=True)
    def unfinished_sub_jobs(self, fanout_id: str) -> list[str]:
        rows = self._ex(f"SELECT id FROM djobs_jobs WHERE fanout_id = ? AND status NOT IN {TERMINAL}", (fanout_id,))
        return [r[0] for r in rows.fetchall()]

    @operation(read=True)
    def sub_jobs_to_cancel_with(self, parent_id: str) -> list[str]:
        """Unfinished sub-jobs of the parent's fan-outs that asked to be cancelled when the parent fails."""
        rows = self._ex(
            "SELECT s.id FROM djobs_jobs s JOIN djobs_fanouts f ON s.fanout_id = f.id WHERE f.parent_id = ? "
            f"AND f.cancel_on_parent_failure = 1 AND s.status NOT IN {TERMINAL}",
            (parent_id,),
        )
        return [r[0] for r in rows.fetchall()]

    @operation
    def resume_orphaned_waiters(self) -> int:
        """A fan-out parent left waiting with no undecided fan-out (its decider died between writes) resumes."""
        with self.tx():
            n = self._resume_orphaned_waiters()
        if n:
            self.wake_local()
        return n

    def _resume_orphaned_waiters(self) -> int:
        n = int(
            self._ex(
                "UPDATE djobs_jobs SET status = 'pending', run_at = {now}, wait_kind = NULL, updated_at = {now} "
                "WHERE status = 'waiting' AND (wait_kind IS NULL OR wait_kind = 'fanout') AND NOT EXISTS "
                "(SELECT 1 FROM djobs_fanouts f WHERE f.parent_id = djobs_jobs.id AND f.decided IS NULL)"
            ).rowcount
        )
        if n:
            self._notify()
        return n
