"""Failures you can act on, and producers, on SQLite and PostgreSQL: dead letters with their error and
traceback, filtered; requeueing failed jobs in bulk (in batches, skipping keys held elsewhere); an
idempotency window that holds a key after the job completed and frees it after; and a producer process
with no handler code enqueueing a type that a worker process registered."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from durable_handlers import WorkerProcs, in_process_worker, sql, wait_status, wait_until

import djobs
from djobs.proof.dbutil import is_postgres

pytestmark = pytest.mark.timeout(240)


def _run_all(q: djobs.Queue) -> None:
    in_process_worker(q, queues={"default": 4, "q2": 2}, burst=True).run()


def test_dead_letters_newest_first_with_their_error_filtered_by_queue_and_type(q: djobs.Queue) -> None:
    a = q.enqueue("rec", {"tag": "a", "fail": "noretry"})
    b = q.enqueue("rec", {"tag": "b", "fail": "error"}, queue="q2", retries=0)
    c = q.enqueue("refuse", {"wf": "c"})
    ok = q.enqueue("rec", {"tag": "ok"})
    _run_all(q)
    assert q.get_job(ok).status == djobs.JobStatus.COMPLETED  # type: ignore[union-attr]
    # The newest failure first: order them by when they failed, as the database recorded it.
    order = [r[0] for r in sql(q, "SELECT id FROM djobs_jobs WHERE status = 'failed' ORDER BY completed_at DESC, id DESC")]
    dead = q.dead_letters()
    assert [j.id for j in dead] == order and set(order) == {a, b, c}
    by_id = {j.id: j for j in dead}
    assert by_id[b].last_error is not None and "rec b broke" in by_id[b].last_error
    assert by_id[b].last_traceback is not None and "RuntimeError" in by_id[b].last_traceback
    assert [j.id for j in q.dead_letters(queue="q2")] == [b]
    assert [j.id for j in q.dead_letters(type="refuse")] == [c]
    assert q.dead_letters(queue="q2", type="refuse") == [] and len(q.dead_letters(limit=1)) == 1


def test_requeue_failed_filters_and_runs_them_again(q: djobs.Queue) -> None:
    first = [q.enqueue("rec", {"tag": f"a{i}", "fail": "noretry"}) for i in range(3)]
    other = q.enqueue("refuse", {"wf": "r"})
    _run_all(q)
    assert q.requeue_failed(since=datetime.now(UTC) + timedelta(minutes=1)) == 0
    assert q.requeue_failed(queue="nope") == 0 and q.requeue_failed(type="nope") == 0
    assert q.requeue_failed(type="rec", since=timedelta(hours=1)) == 3
    assert all(q.get_job(i).status == djobs.JobStatus.PENDING for i in first)  # type: ignore[union-attr]
    assert q.get_job(other).status == djobs.JobStatus.FAILED  # type: ignore[union-attr]
    assert all(q.get_job(i).last_error is None and q.get_job(i).attempt == 0 for i in first)  # type: ignore[union-attr]
    kinds = [e.kind for e in q.job_events(first[0])]
    assert kinds[-1] == "job_requeued"
    _run_all(q)  # they fail again (the handler refuses): requeued jobs really ran
    assert all(q.get_job(i).status == djobs.JobStatus.FAILED for i in first)  # type: ignore[union-attr]
    assert q.get_job(first[0]).attempt == 1  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        q.requeue_failed(since=datetime(1, 1, 1))


def test_requeue_failed_goes_in_batches_and_skips_a_key_held_elsewhere(q: djobs.Queue) -> None:
    ids = [q.enqueue("rec", {"tag": f"b{i}", "fail": "noretry"}) for i in range(7)]
    keyed = q.enqueue("rec", {"tag": "k", "fail": "noretry"}, unique="charge:1")
    _run_all(q)
    holder = q.enqueue("rec", {"tag": "holder"}, unique="charge:1", delay=3600)  # the key is free: it failed
    assert q.storage.requeue_failed(batch=3) == 7, "3 + 3 + 1, the keyed job left failed"
    assert q.get_job(keyed).status == djobs.JobStatus.FAILED and q.get_job(holder) is not None  # type: ignore[union-attr]
    assert sorted(j.id for j in q.list_jobs(status="pending")) == sorted([*ids, holder])
    q.cancel_job(holder)
    assert q.requeue_failed() == 1 and q.get_job(keyed).status == djobs.JobStatus.PENDING  # type: ignore[union-attr]


def test_unique_for_holds_the_key_after_completion_and_frees_it_after_the_window(q: djobs.Queue) -> None:
    # Two keys: a long window (held whatever the machine's speed) and a short one (seen to end).
    first = q.enqueue("rec", {"tag": "u"}, unique="welcome:42", unique_for=timedelta(hours=1))
    short = q.enqueue("rec", {"tag": "s"}, unique="short:42", unique_for=0.5)
    with pytest.raises(djobs.DuplicateJob) as err:
        q.enqueue("rec", {"tag": "u2"}, unique="welcome:42")
    assert err.value.existing_id == first
    _run_all(q)
    assert q.get_job(first).status == djobs.JobStatus.COMPLETED  # type: ignore[union-attr]
    assert q.get_job(short).status == djobs.JobStatus.COMPLETED  # type: ignore[union-attr]
    assert q.enqueue("rec", {"tag": "u3"}, unique="welcome:42", if_exists="return") == first, "held after completion"
    q.purge(older_than=0)
    assert q.get_job(first) is not None, "purge keeps a job inside its window"
    again = wait_until(lambda: _try(q, "short:42"), 30, "the short window to end")
    assert again != short and q.get_job(again).status == djobs.JobStatus.PENDING  # type: ignore[union-attr]
    with pytest.raises(djobs.DuplicateJob):
        q.enqueue("rec", {"tag": "u4"}, unique="welcome:42")
    with pytest.raises(ValueError):
        q.enqueue("rec", {"tag": "x"}, unique_for=60)  # a window needs a key
    with pytest.raises(ValueError):
        q.enqueue("rec", {"tag": "x"}, unique="k", if_exists="skip")


def _try(q: djobs.Queue, key: str) -> str | None:
    try:
        return q.enqueue("rec", {"tag": "again"}, unique=key)
    except djobs.DuplicateJob:
        time.sleep(0.1)
        return None


PRODUCER = textwrap.dedent(
    """
    import sys, djobs
    queue = djobs.Queue(djobs.connect(sys.argv[1]))  # strict: no handler code in this process
    print(queue.enqueue("rec", {"tag": "from-producer"}, meta={"from": "producer"}))
    try:
        queue.enqueue("nobody-registered-this", None)
    except djobs.UnknownJobType:
        print("unknown")
    """
)


def test_a_producer_looks_a_registered_type_up_once_then_enqueues_with_one_statement(
    store: object, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that enqueues jobs another process handles (a web app, say) reads the type's defaults once
    per TYPE_CACHE_SECONDS; each enqueue after that is its INSERT alone. A worker registering new defaults
    is seen at the next look-up."""
    import djobs.queue as queue_mod

    def register(retries: int) -> None:
        options = json.dumps({"backoff": {"initial": 2.0, "maximum": 60.0, "multiplier": 2.0, "jitter": 0.0}})
        store.register_types([("remote.job", "remote-q", retries, 3, 30.0, options)])  # type: ignore[attr-defined]

    producer = djobs.Queue(store)  # type: ignore[arg-type]
    register(4)
    first = producer.get_job(producer.enqueue("remote.job", {}))
    register(9)  # the worker restarts with new defaults, inside the producer's cache window
    sent: list[str] = []
    if not is_postgres(db_url):  # SQLite says what it runs; PostgreSQL's statements are seen by their effect
        store.db.connection().set_trace_callback(sent.append)  # type: ignore[attr-defined]
    second = producer.get_job(producer.enqueue("remote.job", {}))
    if not is_postgres(db_url):
        store.db.connection().set_trace_callback(None)  # type: ignore[attr-defined]
        enqueue = [s for s in sent if not s.startswith("SELECT id, type")]  # get_job's own read
        assert len(enqueue) == 1 and enqueue[0].startswith("INSERT INTO djobs_jobs"), sent
    for job in (first, second):
        assert job is not None and (job.queue, job.max_retries, job.priority, job.timeout) == ("remote-q", 4, 3, 30.0)
        assert job.backoff is None, "no backoff named: the handler's applies where the job runs"
    monkeypatch.setattr(queue_mod, "TYPE_CACHE_SECONDS", 0.0)
    third = producer.get_job(producer.enqueue("remote.job", {}))
    assert third is not None and third.max_retries == 9


def test_a_producer_without_handler_code_enqueues_a_type_a_worker_registered(
    q: djobs.Queue, db_url: str, led: Path, procs: WorkerProcs, tmp_path: Path
) -> None:
    procs.start()
    out = subprocess.run(
        [sys.executable, "-c", PRODUCER, db_url], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=True
    ).stdout.split()
    job_id, unknown = out
    assert unknown == "unknown"
    job = wait_status(q, job_id, "completed")
    assert job.meta == {"from": "producer"} and [j.id for j in q.list_jobs(meta={"from": "producer"})] == [job_id]
    assert job.max_retries == q.get_handler("rec").options.retries, "the worker's registered defaults apply"
