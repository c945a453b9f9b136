"""`djobs.explain.why`: every reason a job is not running, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

import djobs
from djobs.explain import why


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def q(queue: djobs.Queue) -> djobs.Queue:
    queue.register("noop", lambda: None)
    return queue


def test_unknown_job(q):
    with pytest.raises(djobs.JobNotFound):
        why(q, "missing")


def test_pending_without_workers(q):
    job_id = q.enqueue("noop")
    assert why(q, job_id) == ["no live worker serves queue 'default'"]


def test_due_later_and_paused_queue_and_paused_job(q):
    job_id = q.enqueue("noop", delay=timedelta(hours=2))
    reasons = why(q, job_id)
    assert reasons[0].startswith("it is due at ") and "(in 2.0h)" in reasons[0]
    q.pause_queue("default", reason="deploy")
    assert "queue 'default' is paused: deploy" in why(q, job_id)
    q.pause_job(job_id, reason="hold on")
    assert why(q, job_id)[0] == "the job is paused: hold on; resume it with djobs resume job ID"


def test_backing_off_after_a_failed_attempt(q):
    def flaky() -> None:
        raise RuntimeError("database hiccup")

    q.register("flaky", flaky, retries=3)
    job_id = q.enqueue("flaky")
    q.worker(queues={"default": 1}, scheduler=False, burst=True).run()
    job = q.get_job(job_id)
    assert job.attempt == 1 and job.status.value in ("pending", "retrying")
    reasons = why(q, job_id, now=job.run_at - timedelta(seconds=0.5))
    assert reasons[0].startswith("it is backing off until ") and "after attempt 1: " in reasons[0]
    assert "database hiccup" in reasons[0]


def test_waiting_on_sub_jobs(q):
    def parent(ctx: djobs.Context, args: None) -> list[int]:
        return djobs.values(ctx.fan_out([djobs.Sub("noop", queue="elsewhere") for _ in range(3)]))

    q.register("parent", parent, queue="parents")
    job_id = q.enqueue("parent")
    q.worker(queues={"parents": 1}, scheduler=False, burst=True).run()
    assert q.get_job(job_id).status == djobs.JobStatus.WAITING
    assert "the job is waiting on 3 of 3 sub-jobs" in why(q, job_id)


def test_workers_that_cannot_run_it(q, store):
    q.register("only-here", lambda: None)
    job_id = q.enqueue("only-here")
    other = djobs.Queue(store)  # knows the module-level jobs only, not "only-here"
    w = other.worker(queues={"default": 1}, scheduler=False)
    w.start()
    try:
        assert "no live worker serving queue 'default' has a handler for job type 'only-here'" in why(q, job_id)
        pending = q.enqueue("noop", queue="side")
        assert "no live worker serves queue 'side'" in why(q, pending)
    finally:
        w.stop(timeout=5)


def test_every_capable_worker_paused(q):
    w = q.worker(queues={"default": 1}, scheduler=False)
    w.start()
    try:
        q.pause_worker(w.id, reason="inspection")
        wait_for(lambda: w.is_paused)
        job_id = q.enqueue("noop")
        assert f"every worker that could run it is paused ({w.id})" in why(q, job_id)
    finally:
        w.stop(timeout=5)


def test_running_says_where_and_since_when(q):
    release = threading.Event()
    q.register("block", lambda: release.wait(20))
    job_id = q.enqueue("block")
    w = q.worker(queues={"default": 1}, scheduler=False)
    w.start()
    try:
        wait_for(lambda: q.get_job(job_id).status == djobs.JobStatus.RUNNING)
        reasons = why(q, job_id)
        assert reasons[0].startswith(f"the job is running on worker {w.id} on ")
        assert "(pid " in reasons[0] and "since " in reasons[0] and reasons[0].endswith("attempt 1")
    finally:
        release.set()
        w.stop(timeout=5)


def test_ready_behind_a_busy_worker_then_finished(q):
    release = threading.Event()
    q.register("block", lambda: release.wait(20))
    busy = q.enqueue("block")
    w = q.worker(queues={"default": 1}, scheduler=False)
    w.start()
    try:
        wait_for(lambda: q.get_job(busy).status == djobs.JobStatus.RUNNING)
        job_id = q.enqueue("noop")
        assert why(q, job_id) == ["nothing holds it back: the next free worker on queue 'default' will claim it"]
        release.set()
        wait_for(lambda: q.get_job(job_id).status == djobs.JobStatus.COMPLETED)
    finally:
        release.set()
        w.stop(timeout=5)
    [reason] = why(q, job_id)
    assert reason.startswith("the job is completed (since ") and reason.endswith("it will not run again")


def test_failed_mentions_error_and_retry(q):
    def bad() -> None:
        raise djobs.NoRetry("nope")

    q.register("bad", bad)
    job_id = q.enqueue("bad")
    q.worker(queues={"default": 1}, scheduler=False, burst=True).run()
    [reason] = why(q, job_id)
    assert reason.startswith("the job is failed") and "nope" in reason and "djobs retry ID" in reason
