"""Retention of finished jobs, on SQLite and PostgreSQL: stored in the database, applied by the elected
worker of a fleet of real worker processes in bounded batches while they keep running jobs, deleting the
rows that hang off a job with it, and keeping what must stay (unfinished jobs, statuses kept forever, keys
inside their idempotency window, sub-jobs of a parent still going)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from durable_handlers import WorkerProcs, open_gate, sql, wait_status, wait_until

import djobs

pytestmark = pytest.mark.timeout(240)

OLD = 3600.0  # how long ago the history in these tests finished


def test_retention_round_trip_and_validation(queue: djobs.Queue) -> None:
    assert queue.retention() == djobs.Retention() and not queue.retention(), "never set: kept forever"
    queue.set_retention()
    assert queue.retention() == djobs.Retention(7 * 86400.0, 30 * 86400.0, 7 * 86400.0)
    queue.set_retention(completed=90, failed=None, cancelled=timedelta(hours=1))
    assert queue.retention() == djobs.Retention(90.0, None, 3600.0)
    for bad in ({"completed": -1}, {"failed": float("nan")}, {"cancelled": 1e300}, {"completed": "7d"}):
        with pytest.raises((ValueError, TypeError)):
            queue.set_retention(**bad)  # type: ignore[arg-type]
    assert queue.retention() == djobs.Retention(90.0, None, 3600.0), "a refused setting writes nothing"
    queue.set_retention(None, None, None)
    assert not queue.retention()


def _history(q: djobs.Queue, n: int, status: str, tag: str) -> list[str]:
    """`n` jobs of an unserved queue that finished (as `status`) an hour ago, each with a checkpoint, a
    signal and an event row."""
    ids = q.enqueue_many([djobs.Sub("rec", {"tag": f"{tag}{i}"}, queue="history") for i in range(n)])
    marks = ", ".join("?" * len(ids))
    sql(q, f"UPDATE djobs_jobs SET status = ?, completed_at = ? WHERE id IN ({marks})", (status, time.time() - OLD, *ids))
    for i in ids[:50]:
        sql(q, "INSERT INTO djobs_checkpoints (job_id, key, name, created_at) VALUES (?, 'k', 'n', 0)", (i,))
        sql(q, "INSERT INTO djobs_signals (job_id, name, sent_at) VALUES (?, 's', 0)", (i,))
        sql(q, "INSERT INTO djobs_events (ts, kind, job_id) VALUES (0, 'custom:x', ?)", (i,))
    return ids


def _left(q: djobs.Queue, table: str, col: str, ids: list[str]) -> int:
    marks = ", ".join("?" * len(ids))
    return int(sql(q, f"SELECT COUNT(*) FROM {table} WHERE {col} IN ({marks})", tuple(ids))[0][0])


def test_retention_deletes_old_jobs_in_batches_while_workers_run(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    done = _history(q, 1234, "completed", "c")  # more than two batches of 500, and not a multiple
    failed = _history(q, 20, "failed", "f")
    cancelled = _history(q, 500, "cancelled", "x")  # exactly one full batch: the next comes back empty
    window = q.enqueue("rec", {"tag": "w"}, queue="history", unique="win", unique_for=timedelta(hours=2))
    parent = q.new_job("rec", {"tag": "parent"}, queue="history")
    child = q.new_job("rec", {"tag": "child"}, queue="history", parent_id=parent.id)
    q.storage.insert_jobs([parent, child])
    sql(q, "UPDATE djobs_jobs SET status = 'completed', completed_at = ? WHERE id IN (?, ?)", (time.time() - OLD, window, child.id))
    sql(q, "UPDATE djobs_jobs SET status = 'waiting', run_at = 253402300799 WHERE id = ?", (parent.id,))

    for _ in range(2):
        procs.start(retention=0.3)
    hung = q.enqueue("hang", {"tag": "h", "gate": "g"})
    wait_status(q, hung, "running")
    stream = [q.enqueue("rec", {"tag": f"s{i}"}) for i in range(150)]
    q.set_retention(completed=60, failed=None, cancelled=60)  # the stream's jobs finish now: they stay

    wait_until(lambda: _left(q, "djobs_jobs", "id", done + cancelled) == 0, 60, "retention to delete the history")
    for table, col in (("djobs_checkpoints", "job_id"), ("djobs_signals", "job_id"), ("djobs_events", "job_id")):
        assert _left(q, table, col, done + cancelled) == 0, f"{table} rows of deleted jobs are gone"
    assert _left(q, "djobs_jobs", "id", failed) == 20 and _left(q, "djobs_checkpoints", "job_id", failed) == 20
    assert q.get_job(window) is not None, "a key inside its idempotency window is kept"
    assert q.get_job(child.id) is not None, "a sub-job of a parent still going is kept"
    for i in stream:
        wait_status(q, i, "completed")
    assert all(q.get_job(i) is not None for i in stream), "recent jobs are kept"
    assert q.get_job(hung).status == djobs.JobStatus.RUNNING  # type: ignore[union-attr]
    open_gate(led, "g")
    wait_status(q, hung, "completed")
    # Once the parent finishes, its old sub-job goes with the next run.
    sql(q, "UPDATE djobs_jobs SET status = 'cancelled', completed_at = ? WHERE id = ?", (time.time() - OLD, parent.id))
    wait_until(lambda: q.get_job(child.id) is None and q.get_job(parent.id) is None, 30, "the fan-out's jobs to go")


def test_apply_retention_counts_per_status_and_keeps_what_is_kept_forever(queue: djobs.Queue, led: Path) -> None:
    from durable_handlers import register

    register(queue, led)
    done = _history(queue, 21, "completed", "c")
    failed = _history(queue, 3, "failed", "f")
    assert queue.storage.apply_retention(djobs.Retention(), batch=7) == {}, "forever deletes nothing"
    assert queue.storage.apply_retention(djobs.Retention(completed=OLD * 2, failed=0), batch=7) == {"failed": 3}
    assert queue.storage.apply_retention(djobs.Retention(completed=60), batch=7) == {"completed": 21}
    assert _left(queue, "djobs_jobs", "id", done + failed) == 0
