"""Durable-step checkpoints: read once per execution, written guarded by ownership.

A call's checkpoint is keyed by (job id, call path); named checkpoints (`save_checkpoint`) by "p:" + name.
Writes go through group commit, so ten handler threads checkpointing at once cost one commit, not ten.
"""

from __future__ import annotations

from djobs.errors import OwnershipLost
from djobs.jobs import Checkpoint, Owner
from djobs.storage import records
from djobs.storage.base import StorageBase
from djobs.storage.dialect import OWNED
from djobs.storage.errors import operation

Stored = tuple[str, str | None, str | None]  # (name, value JSON, error)

_CALL = (
    "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
    "SELECT ?, ?, ?, ?, ?, ?, {now} WHERE EXISTS (SELECT 1 FROM djobs_jobs WHERE " + OWNED + ") "
    "ON CONFLICT (job_id, key) DO NOTHING"
)
_NAMED = (
    "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
    "SELECT ?, ?, NULL, ?, ?, NULL, {now} WHERE EXISTS (SELECT 1 FROM djobs_jobs WHERE " + OWNED + ") "
    "ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value, created_at = excluded.created_at"
)


class CheckpointOps(StorageBase):
    @operation(read=True)
    def load_checkpoints(self, job_id: str) -> dict[str, Stored]:
        """Every checkpoint of a job by key: what a replay returns without running."""
        rows = self._ex("SELECT key, name, value, error FROM djobs_checkpoints WHERE job_id = ?", (job_id,))
        return {r[0]: (r[1], r[2], r[3]) for r in rows.fetchall()}

    @operation(read=True)
    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        rows = self._ex(
            "SELECT job_id, call_index, name, value, error, created_at, key FROM djobs_checkpoints "
            "WHERE job_id = ? ORDER BY created_at, key",
            (job_id,),
        ).fetchall()
        return [records.checkpoint(r) for r in rows]

    def _owned(self, owner: Owner) -> bool:
        row = self._ex(f"SELECT 1 FROM djobs_jobs WHERE {OWNED}", (owner.job_id, owner.worker_id, owner.attempt))
        return row.fetchone() is not None

    @operation
    def write_call_checkpoint(
        self, owner: Owner, queue: str, key: str, index: int, name: str, value: str | None, error: str | None,
        event_data: str,
    ) -> None:  # fmt: skip
        """Checkpoint a durable call (first writer wins) with its `checkpoint_saved` event; OwnershipLost if
        the job is no longer this worker's for this attempt."""

        def op() -> None:
            o = (owner.job_id, owner.worker_id, owner.attempt)
            cur = self._ex(_CALL, (owner.job_id, key, index, name, value, error, *o))
            if cur.rowcount == 0 and not self._owned(owner):
                raise OwnershipLost(owner.job_id)
            self._event("checkpoint_saved", owner.job_id, queue, owner.worker_id, event_data)

        self.group(op)

    @operation
    def save_named_checkpoint(self, owner: Owner, queue: str, name: str, value: str, event_data: str) -> None:
        def op() -> None:
            o = (owner.job_id, owner.worker_id, owner.attempt)
            if self._ex(_NAMED, (owner.job_id, f"p:{name}", name, value, *o)).rowcount == 0:
                raise OwnershipLost(owner.job_id)
            self._event("checkpoint_saved", owner.job_id, queue, owner.worker_id, event_data)

        self.group(op)
