"""Durable-step checkpoints: read once per execution, written guarded by ownership.

A call's checkpoint is keyed by (job id, call path); named checkpoints (`save_checkpoint`) by "p:" + name.
Writes go through group commit, so ten handler threads checkpointing at once cost one commit, not ten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from djobs.errors import OwnershipLost
from djobs.jobs import Owner
from djobs.storage import records
from djobs.storage.base import StorageBase
from djobs.storage.dialect import OWNED
from djobs.storage.errors import operation

if TYPE_CHECKING:
    from djobs.info import Checkpoint

Stored = tuple[str, str | None, str | None]  # (name, value JSON, error)

_CALL = (
    "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
    "SELECT ?, ?, ?, ?, ?, ?, {now} WHERE EXISTS (SELECT 1 FROM djobs_jobs WHERE " + OWNED + ") "
    "ON CONFLICT (job_id, key) DO NOTHING"
)
_CALL_COLS = ("j", "k", "i", "n", "v", "e", "w", "a")
_CALL_MANY = (
    "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
    "SELECT v.j, v.k, CAST(v.i AS INTEGER), v.n, v.v, v.e, {{now}} FROM {src} WHERE EXISTS (SELECT 1 FROM djobs_jobs "
    "WHERE id = v.j AND locked_by = v.w AND attempt = CAST(v.a AS INTEGER) AND status = 'running') "
    "ON CONFLICT (job_id, key) DO NOTHING"
)
_CALL_MANY_PG = (
    "WITH v AS (SELECT * FROM {src}), "
    "ok AS (SELECT v.* FROM v JOIN djobs_jobs jb ON jb.id = v.j AND jb.locked_by = v.w "
    "AND jb.attempt = CAST(v.a AS INTEGER) AND jb.status = 'running'), "
    "ins AS (INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
    "SELECT ok.j, ok.k, CAST(ok.i AS INTEGER), ok.n, ok.v, ok.e, {now} FROM ok ON CONFLICT (job_id, key) DO NOTHING), "
    "ev AS (INSERT INTO djobs_events (ts, kind, job_id, queue, worker_id, data) "
    "SELECT {now}, 'checkpoint_saved', ok.j, ok.q, ok.w, ok.d FROM ok) "
    "SELECT ok.j, ok.k FROM ok"
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
        the job is no longer this worker's for this attempt. Concurrent checkpoints of this process are
        written by one statement in one shared commit."""
        row = (owner.job_id, key, index, name, value, error, owner.worker_id, owner.attempt, queue, event_data)
        if self.is_pg:
            self.group_batch(self._flush_call_checkpoints_pg, row, alone=True)
        else:
            self.group_batch(self._flush_call_checkpoints, row)

    def _flush_call_checkpoints_pg(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        """PostgreSQL: the group's checkpoints and their events in one statement (so, outside a shared
        transaction, one round trip and one commit); the statement returns the rows whose job was still
        owned, the others are OwnershipLost."""
        sql = self._statements.get("checkpoints-many-pg")
        if sql is None:
            src = self.dialect.batch_source(("j", "k", "i", "n", "v", "e", "w", "a", "q", "d"))
            sql = self._statements["checkpoints-many-pg"] = self._q(_CALL_MANY_PG.replace("{src}", src))
        cur = self.db.execute_sql(sql, self._batch_params(rows))
        owned = {(r[0], r[1]) for r in cur.fetchall()}
        return [None if (r[0], r[1]) in owned else OwnershipLost(r[0]) for r in rows]

    def _flush_call_checkpoints(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        """Insert a group's call checkpoints at once, each only while its job is still owned. When fewer
        rows went in than were asked (a lost job, or a checkpoint already there: both rare), each row's
        ownership is looked up to tell which."""
        if len(rows) == 1:  # a lone step (one slot, or no other step at that moment): no JSON batch to build
            r = rows[0]
            cur = self._ex(_CALL, (*r[:6], r[0], r[6], r[7]))
        else:
            sql = self._statements.get("checkpoints-many")
            if sql is None:
                sql = self._statements["checkpoints-many"] = self._q(_CALL_MANY.format(src=self.dialect.batch_source(_CALL_COLS)))
            cur = self.db.execute_sql(sql, self._batch_params([r[:8] for r in rows]))
        results: list[Any] = [None] * len(rows)
        if cur.rowcount != len(rows):
            for i, r in enumerate(rows):
                if not self._owned(Owner(r[0], r[6], r[7])):
                    results[i] = OwnershipLost(r[0])
        saved = [("checkpoint_saved", r[0], r[8], r[6], r[9]) for r, res in zip(rows, results, strict=True) if res is None]
        if len(saved) == 1:
            self._event(*saved[0])
        else:
            self._events_many(saved)
        return results

    @operation
    def save_named_checkpoint(self, owner: Owner, queue: str, name: str, value: str, event_data: str) -> None:
        def op() -> None:
            o = (owner.job_id, owner.worker_id, owner.attempt)
            if self._ex(_NAMED, (owner.job_id, f"p:{name}", name, value, *o)).rowcount == 0:
                raise OwnershipLost(owner.job_id)
            self._event("checkpoint_saved", owner.job_id, queue, owner.worker_id, event_data)

        self.group(op)
