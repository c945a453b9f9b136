"""The worker object in-process, on SQLite and PostgreSQL: stop/drain/release, concurrency caps, queues,
handler defaults, registration, and hooks added while it runs."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from core_support import job_count, running, wait_until

import djobs

pytestmark = pytest.mark.timeout(120)


def _job(queue: djobs.Queue, job_id: str) -> djobs.Job:
    job = queue.get_job(job_id)
    assert job is not None
    return job


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stop_releases_a_job_that_outlives_the_drain_timeout(queue: djobs.Queue, kind: str) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    if kind == "sync":
        def long(ctx: djobs.Context, args: Any) -> str:
            started.set()
            if ctx.wait_cancelled(60):
                cancelled.set()
            return "finished anyway"
    else:
        async def long(ctx: djobs.Context, args: Any) -> str:  # type: ignore[misc]
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "finished anyway"

    queue.register("long", long, retries=2)
    jid = queue.enqueue("long")
    w = queue.worker(queues={"default": 2}, heartbeat_interval=0.2, stale_lock_age=2, stale_lock_interval=0.5)
    w.start()
    try:
        assert started.wait(30), "the job never started"
        assert w.running_job_count == 1
        assert _job(queue, jid).attempt == 1
    finally:
        w.stop(timeout=0.3)
    assert cancelled.wait(10), "the handler was not cancelled"
    job = _job(queue, jid)
    assert job.status == djobs.JobStatus.PENDING, job.status
    assert job.attempt == 0 and job.locked_by is None
    time.sleep(0.3)  # the cancelled handler's late return must not complete it
    assert _job(queue, jid).status == djobs.JobStatus.PENDING


def test_running_job_count_is_zero_once_stop_released_the_jobs(queue: djobs.Queue) -> None:
    started = threading.Event()

    def long(ctx: djobs.Context, args: Any) -> None:
        started.set()
        ctx.wait_cancelled(60)

    queue.register("long", long)
    jid = queue.enqueue("long")
    w = queue.worker(queues={"default": 2})
    w.start()
    assert started.wait(30)
    assert w.running_job_count == 1
    w.stop(timeout=0.2)
    assert _job(queue, jid).status == djobs.JobStatus.PENDING
    assert w.running_job_count == 0, "a stopped worker still counts a job it released"


def test_stop_waits_for_a_job_that_finishes_within_the_drain_timeout(queue: djobs.Queue) -> None:
    started = threading.Event()

    def short(ctx: djobs.Context, args: Any) -> str:
        started.set()
        time.sleep(1.0)
        return "done"

    queue.register("short", short)
    jid = queue.enqueue("short")
    w = queue.worker(queues={"default": 2})
    w.start()
    assert started.wait(30)
    w.stop(timeout=30)
    job = _job(queue, jid)
    assert job.status == djobs.JobStatus.COMPLETED and job.result == "done" and job.attempt == 1


@pytest.mark.parametrize("kind", ["sync", "async", "mixed"])
@pytest.mark.parametrize("pause", [0.02, 0.0], ids=["20ms", "instant"])  # instant: the worker prefetches
def test_concurrency_is_capped_per_queue(queue: djobs.Queue, kind: str, pause: float) -> None:
    lock = threading.Lock()
    now: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}

    def enter(q: str) -> None:
        with lock:
            now[q] += 1
            peak[q] = max(peak[q], now[q])

    def leave(q: str) -> None:
        with lock:
            now[q] -= 1

    def work(ctx: djobs.Context, args: Any) -> None:
        enter(ctx.job.queue)
        time.sleep(pause)
        leave(ctx.job.queue)

    async def awork(ctx: djobs.Context, args: Any) -> None:
        enter(ctx.job.queue)
        await asyncio.sleep(pause)
        leave(ctx.job.queue)

    queue.register("work", work)
    queue.register("awork", awork)
    types = {"sync": ["work"], "async": ["awork"], "mixed": ["work", "awork"]}[kind]
    ids = queue.enqueue_many(
        [djobs.Sub(types[i % len(types)], None, queue="a" if (i // 2) % 2 else "b") for i in range(160 if pause else 400)]
    )
    with running(queue, queues={"a": 3, "b": 2}):
        for i in ids:
            queue.result(i, timeout=60)
    assert peak["a"] <= 3 and peak["b"] <= 2, peak
    if pause:
        assert peak["a"] >= 2, "queue a never ran jobs side by side"


def test_a_worker_serves_only_its_queues_and_handler_defaults_apply(queue: djobs.Queue) -> None:
    @queue.handler("mail", queue="emails", retries=5, priority=7)
    def mail(args: Any) -> str:
        return "sent"

    default_job = _job(queue, queue.enqueue("mail"))
    assert (default_job.queue, default_job.max_retries, default_job.priority) == ("emails", 5, 7)
    overridden = _job(queue, queue.enqueue("mail", queue="bulk", retries=0, priority=-1))
    assert (overridden.queue, overridden.max_retries, overridden.priority) == ("bulk", 0, -1)
    other = queue.enqueue("mail", queue="elsewhere")
    with running(queue, queues={"emails": 1, "bulk": 1}):
        assert queue.result(default_job.id, timeout=30) == "sent"
        assert queue.result(overridden.id, timeout=30) == "sent"
        with pytest.raises(TimeoutError):
            queue.result(other, timeout=0.5)
    assert _job(queue, other).status == djobs.JobStatus.PENDING and _job(queue, other).attempt == 0


def test_worker_registers_itself_and_unregisters_on_stop(queue: djobs.Queue) -> None:
    queue.register("a", lambda args: None)
    queue.register("b", lambda args: None)
    w = queue.worker(queues={"default": 3, "x": 1}, heartbeat_interval=0.2, stale_lock_age=2)
    w.start()
    try:
        info = wait_until(lambda: [i for i in queue.workers() if i.id == w.id], 30, "worker listed")[0]
        assert info.pid == os.getpid()
        assert info.queues == {"default": 3, "x": 1}
        assert {"a", "b"} <= set(info.handlers)
        assert info.alive
        first = info.last_heartbeat_at
        wait_until(
            lambda: [i for i in queue.workers() if i.id == w.id and i.last_heartbeat_at > first],  # type: ignore[operator]
            30,
            "a heartbeat",
        )
    finally:
        w.stop(timeout=5)
    assert not [i for i in queue.workers() if i.id == w.id], "a stopped worker is not alive"
    assert [i for i in queue.workers(include_dead=True) if i.id == w.id and not i.alive]


def test_hooks_added_while_a_worker_runs_fire_too(queue: djobs.Queue) -> None:
    queue.register("x", lambda args: args)
    seen: list[tuple[str, Any]] = []
    with running(queue):
        queue.on_job_start(lambda job: seen.append(("start", job.id)))
        queue.on_job_complete(lambda job, result: seen.append(("complete", result)))
        jid = queue.enqueue("x", 5)
        assert queue.result(jid, timeout=30) == 5
        wait_until(lambda: len(seen) == 2, 10, "both hooks called")
    assert seen == [("start", jid), ("complete", 5)]


def test_delay_takes_seconds_or_timedelta_and_tz_aware_at_keeps_its_instant(queue: djobs.Queue) -> None:
    from datetime import datetime, timezone

    queue.register("d", lambda args: None)
    plus5 = timezone(timedelta(hours=5))
    at = datetime.now(plus5) + timedelta(hours=1)
    job = _job(queue, queue.enqueue("d", at=at))
    assert job.run_at == at and job.run_at.utcoffset() == timedelta(0)  # type: ignore[union-attr]
    with pytest.raises(TypeError):
        queue.enqueue("d", delay="soon")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        queue.enqueue("d", at="tomorrow")  # type: ignore[arg-type]
    assert job_count(queue) == 1


def test_liveness_defaults(queue: djobs.Queue) -> None:
    w = queue.worker()
    assert w.queues == {"default": 10}
    assert (w.heartbeat_interval, w.stale_lock_age, w.stale_lock_interval, w.drain_timeout) == (5.0, 30.0, 5.0, 30.0)
    w = queue.worker(stale_lock_age=timedelta(seconds=3))
    assert w.heartbeat_interval == 1.0  # min(5 s, stale age / 3)
    with pytest.raises(ValueError):
        queue.worker(queues={"default": 0})


@djobs.job("core-tests-module-job", retries=0)
def _module_job(args: dict[str, int]) -> int:
    return args["x"] + 1


def test_handler_shapes_and_module_level_jobs(queue: djobs.Queue) -> None:
    queue.register("nothing", lambda: "no args")
    queue.register("args_only", lambda args: args)
    queue.register("ctx_args", lambda ctx, args: (ctx.job.type, args))
    with pytest.raises(TypeError):
        queue.register("three", lambda a, b, c: None)
    with pytest.raises(TypeError):
        queue.register("not-callable", 42)  # type: ignore[arg-type]
    assert "core-tests-module-job" in queue.job_types()
    other = djobs.Queue(queue.storage)  # every Queue knows module-level jobs
    assert "core-tests-module-job" in other.job_types()
    ids = {
        "nothing": queue.enqueue("nothing"),
        "args_only": queue.enqueue("args_only", [1, 2]),
        "ctx_args": queue.enqueue("ctx_args", {"k": "v"}),
        "module": queue.enqueue("core-tests-module-job", {"x": 41}),
    }
    assert _job(queue, ids["module"]).max_retries == 0
    with running(queue):
        assert queue.result(ids["nothing"], timeout=30) == "no args"
        assert queue.result(ids["args_only"], timeout=30) == [1, 2]
        assert queue.result(ids["ctx_args"], timeout=30) == ["ctx_args", {"k": "v"}]
        assert queue.result(ids["module"], timeout=30) == 42


def test_a_service_poked_while_it_runs_runs_again_at_once() -> None:
    """A worker's services (the control check among them) run on a loop; a poke that lands while one runs
    may be about a change that run read too early (a pause committed mid-run), so the service runs again
    right after, not at its next time a minute later. Without that, a remote pause sent just as a worker
    started could wait out the control check's interval."""
    from djobs.worker.service import Service, ServiceLoop

    first_started, release = threading.Event(), threading.Event()
    runs: list[float] = []

    class Check(Service):
        name = "check"

        def next_in(self) -> float:
            return 60.0

        def run_once(self) -> int:
            runs.append(time.monotonic())
            if len(runs) == 1:
                first_started.set()
                release.wait(5)
            return 1

    loop = ServiceLoop("test", [Check()], "w-test")
    loop.start()
    try:
        assert first_started.wait(5)
        loop.poke("check")  # lands mid-run
        release.set()
        wait_until(lambda: len(runs) >= 2, 5, "the poked service's second run")
    finally:
        loop.stop()
