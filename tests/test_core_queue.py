"""Retries, unique keys and the Queue API, on SQLite and PostgreSQL.

Workers here run in the test process (`worker.start()`, a real worker on real databases) so handlers can
record what they see in plain lists; crash and multi-process behaviour is in test_core_delivery.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from core_support import job_count, running, wait_until
from dbsql import sql

import djobs

pytestmark = pytest.mark.timeout(120)


@dataclass
class Point:
    x: int
    y: int


@dataclass
class Shape:
    name: str
    points: list[Point]
    tags: dict[str, int] = field(default_factory=dict)


class Calls:
    """Thread-safe record of handler executions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[tuple[Any, ...]] = []

    def add(self, *item: Any) -> None:
        with self._lock:
            self.items.append(item)

    def of(self, job_id: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [i for i in self.items if i[0] == job_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)


def _job(queue: djobs.Queue, job_id: str) -> djobs.Job:
    job = queue.get_job(job_id)
    assert job is not None
    return job


def _status(queue: djobs.Queue, job_id: str) -> djobs.JobStatus:
    return _job(queue, job_id).status


# -- unique keys ----------------------------------------------------------------------------------------------


def test_eight_threads_racing_one_unique_key_make_exactly_one_job(queue: djobs.Queue) -> None:
    queue.register("u", lambda args: None)
    barrier = threading.Barrier(8)
    outcomes: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def go() -> None:
        barrier.wait()
        try:
            r: tuple[str, Any] = ("ok", queue.enqueue("u", {"k": 1}, unique="k"))
        except djobs.DuplicateJob as exc:
            r = ("dup", exc.existing_id)
        except BaseException as exc:  # anything else is a failure the assertions below report
            r = ("error", repr(exc))
        with lock:
            outcomes.append(r)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 8
    oks = [v for kind, v in outcomes if kind == "ok"]
    assert len(oks) == 1, outcomes
    assert sorted(outcomes) == sorted([("ok", oks[0])] + [("dup", oks[0])] * 7), outcomes
    rows = sql(queue.storage, "SELECT id FROM djobs_jobs WHERE unique_key = 'k'").fetchall()
    assert [r[0] for r in rows] == oks


RACER = r"""
import os, sys, time
import djobs
store = djobs.connect(sys.argv[1])
queue = djobs.Queue(store)
queue.register("u", lambda args: None)
open(os.path.join(os.path.dirname(sys.argv[2]), f"ready-{os.getpid()}"), "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
try:
    print("ok", queue.enqueue("u", {"pid": os.getpid()}, unique="k"), flush=True)
except djobs.DuplicateJob as exc:
    print("dup", exc.existing_id, flush=True)
"""


def test_eight_processes_racing_one_unique_key_make_exactly_one_job(db_url: str, queue: djobs.Queue,
                                                                     tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER, db_url, str(go)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
        for _ in range(8)
    ]
    try:
        wait_until(lambda: len(list(tmp_path.glob("ready-*"))) == 8, 60, "eight connected racers")
        go.touch()
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * 8, [o[1].decode()[-2000:] for o in outs]
    lines = [o[0].decode().split() for o in outs]
    oks = [parts[1] for parts in lines if parts[0] == "ok"]
    assert len(oks) == 1, lines
    assert sorted(tuple(parts) for parts in lines) == sorted([("ok", oks[0])] + [("dup", oks[0])] * 7)
    rows = sql(queue.storage, "SELECT id FROM djobs_jobs").fetchall()
    assert [r[0] for r in rows] == oks


def test_unique_key_under_churn_gives_a_job_or_duplicate_job_never_a_raw_error(queue: djobs.Queue) -> None:
    """Enqueues race a worker that completes each holder at once: every attempt either creates the job or
    raises DuplicateJob, even when the holder finishes between the failed insert and the look-up."""
    queue.register("u", lambda args: None)
    created: list[str] = []
    dups: list[str | None] = []
    errors: list[str] = []
    lock = threading.Lock()

    def loop() -> None:
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            try:
                jid = queue.enqueue("u", unique="churn")
                with lock:
                    created.append(jid)
            except djobs.DuplicateJob as exc:
                with lock:
                    dups.append(exc.existing_id)
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")

    with running(queue, queues={"default": 4}, poll_interval=0.01):
        threads = [threading.Thread(target=loop) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for jid in created:
            queue.result(jid, timeout=30)
    assert errors == [], errors[:5]
    assert len(created) >= 2 and dups, (len(created), len(dups))
    assert {d for d in dups if d is not None} <= set(created)
    n_active = sql(queue.storage,
        "SELECT COUNT(*) FROM djobs_jobs WHERE unique_key = 'churn' AND status NOT IN ('completed','failed','cancelled')"
    ).fetchone()[0]
    assert n_active == 0


def test_unique_key_is_held_while_retrying_and_paused(queue: djobs.Queue) -> None:
    def later(ctx: djobs.Context, args: Any) -> None:
        raise djobs.RetryAfter(3600, "much later")

    queue.register("later", later, retries=1)
    queue.register("idle", lambda args: None)
    jid = queue.enqueue("later", unique="r")
    with running(queue):
        wait_until(lambda: _status(queue, jid) == djobs.JobStatus.RETRYING, 30, "job retrying")
    with pytest.raises(djobs.DuplicateJob) as info:
        queue.enqueue("later", unique="r")
    assert info.value.existing_id == jid
    paused = queue.enqueue("idle", unique="p", delay=3600)
    assert queue.pause_job(paused)
    assert _status(queue, paused) == djobs.JobStatus.PAUSED
    with pytest.raises(djobs.DuplicateJob):
        queue.enqueue("idle", unique="p")


def test_unique_key_is_held_until_the_job_completes_fails_or_is_cancelled(queue: djobs.Queue) -> None:
    gate = threading.Event()

    def held(args: Any) -> str:
        gate.wait(30)
        return "done"

    def boom(args: Any) -> None:
        raise djobs.NoRetry("no")

    queue.register("held", held)
    queue.register("boom", boom)
    # cancelled frees it
    first = queue.enqueue("held", unique="key")
    with pytest.raises(djobs.DuplicateJob) as info:
        queue.enqueue("held", unique="key")
    assert info.value.existing_id == first
    assert queue.cancel_job(first)
    second = queue.enqueue("held", unique="key")
    with running(queue) as w:
        # running holds it
        wait_until(lambda: _status(queue, second) == djobs.JobStatus.RUNNING, 30, "job running")
        with pytest.raises(djobs.DuplicateJob) as info:
            queue.enqueue("held", unique="key")
        assert info.value.existing_id == second
        gate.set()
        # completed frees it
        assert queue.result(second, timeout=30) == "done"
        third = queue.enqueue("held", unique="key")
        assert queue.result(third, timeout=30) == "done"
        # failed frees it (another type may reuse the key too)
        bad = queue.enqueue("boom", unique="key")
        with pytest.raises(djobs.JobFailedError):
            queue.result(bad, timeout=30)
        again = queue.enqueue("boom", unique="key")
        assert again not in (first, second, third, bad)
        assert w.running_job_count >= 0
    assert job_count(queue) == 5


def test_enqueue_many_with_one_unique_key_twice_raises_duplicate_job_and_writes_nothing(queue: djobs.Queue) -> None:
    queue.register("u", lambda args: None)
    with pytest.raises(djobs.DuplicateJob) as info:
        queue.enqueue_many([djobs.Sub("u", 1, unique="twice"), djobs.Sub("u", 2, unique="twice")])
    assert info.value.key == "twice"
    assert job_count(queue) == 0
    assert queue.enqueue("u", 3, unique="twice")  # the key was never taken


# -- retries --------------------------------------------------------------------------------------------------


def test_retries_2_means_exactly_3_executions_then_failed_with_growing_backoff(queue: djobs.Queue) -> None:
    calls = Calls()

    def always_fails(ctx: djobs.Context, args: Any) -> None:
        calls.add(ctx.job_id, ctx.job.attempt, time.time())
        raise ValueError(f"boom {ctx.job.attempt}")

    queue.register("fails", always_fails)
    sub = queue.events()
    jid = queue.enqueue("fails", retries=2)
    with running(queue):
        with pytest.raises(djobs.JobFailedError) as info:
            queue.result(jid, timeout=60)
        time.sleep(0.3)  # a fourth execution, if there were one, would already be claimable
    job = _job(queue, jid)
    runs = calls.of(jid)
    assert [r[1] for r in runs] == [1, 2, 3]
    assert job.status == djobs.JobStatus.FAILED and job.attempt == 3 and job.max_retries == 2
    assert "boom 3" in (job.last_error or "") and info.value.job.id == jid
    # default backoff 1 s then 2 s (±10 %): the retries waited at least that long, and the delays grew
    assert runs[1][2] - runs[0][2] >= 0.9
    assert runs[2][2] - runs[1][2] >= 1.8
    retrying = [e for e in _drain(sub) if isinstance(e, djobs.JobRetrying) and e.job_id == jid]
    assert [e.attempt for e in retrying] == [1, 2]
    delays = [(e.next_run_at - e.timestamp).total_seconds() for e in retrying]  # type: ignore[operator]
    assert 0.85 <= delays[0] <= 1.15 and 1.75 <= delays[1] <= 2.25, delays


def test_retries_0_runs_once(queue: djobs.Queue) -> None:
    calls = Calls()

    def fails(ctx: djobs.Context, args: Any) -> None:
        calls.add(ctx.job_id)
        raise RuntimeError("once")

    queue.register("fails0", fails, retries=0)
    jid = queue.enqueue("fails0")
    with running(queue):
        with pytest.raises(djobs.JobFailedError):
            queue.result(jid, timeout=30)
    assert len(calls.of(jid)) == 1


def _raise_wrapped() -> None:
    try:
        raise djobs.NoRetry("inner reason")
    except djobs.NoRetry as exc:
        raise RuntimeError("outer") from exc


@pytest.mark.parametrize(
    "how",
    ["direct", "wrapping-an-exception", "in-cause-chain", "in-context-chain"],
)
def test_no_retry_fails_at_once(queue: djobs.Queue, how: str) -> None:
    calls = Calls()

    def handler(ctx: djobs.Context, args: Any) -> None:
        calls.add(ctx.job_id)
        if how == "direct":
            raise djobs.NoRetry("give up")
        if how == "wrapping-an-exception":
            raise djobs.NoRetry(KeyError("missing"))
        if how == "in-cause-chain":
            _raise_wrapped()
        try:
            raise djobs.NoRetry("inner")
        except djobs.NoRetry:
            raise ValueError("during handling")  # noqa: B904 - implicit context chain on purpose

    queue.register("noretry", handler, retries=5)
    jid = queue.enqueue("noretry")
    with running(queue):
        with pytest.raises(djobs.JobFailedError):
            queue.result(jid, timeout=30)
        time.sleep(0.3)
    assert len(calls.of(jid)) == 1
    job = _job(queue, jid)
    assert job.status == djobs.JobStatus.FAILED and job.attempt == 1


def test_retry_after_sets_run_at_to_now_plus_delay_and_runs_again(queue: djobs.Queue) -> None:
    calls = Calls()

    def handler(ctx: djobs.Context, args: Any) -> str:
        calls.add(ctx.job_id, ctx.job.attempt, time.time())
        if ctx.job.attempt == 1:
            raise djobs.RetryAfter(timedelta(seconds=2), "rate limited")
        return "second time lucky"

    queue.register("later", handler, retries=1)
    jid = queue.enqueue("later")
    with running(queue):
        job = wait_until(
            lambda: (j := _job(queue, jid)).status == djobs.JobStatus.RETRYING and j, 30, "job retrying"
        )
        # run_at and updated_at are written by the same statement on the database clock
        delay = (job.run_at - job.updated_at).total_seconds()  # type: ignore[operator]
        assert 1.95 <= delay <= 2.05, delay
        assert "rate limited" in (job.last_error or "")
        assert queue.result(jid, timeout=30) == "second time lucky"
    runs = calls.of(jid)
    assert [r[1] for r in runs] == [1, 2]
    assert runs[1][2] - runs[0][2] >= 2.0 - 0.02


def test_retry_after_with_no_retries_left_fails(queue: djobs.Queue) -> None:
    calls = Calls()

    def handler(ctx: djobs.Context, args: Any) -> None:
        calls.add(ctx.job_id)
        raise djobs.RetryAfter(0.1, "again")

    queue.register("later0", handler, retries=0)
    jid = queue.enqueue("later0")
    with running(queue):
        with pytest.raises(djobs.JobFailedError):
            queue.result(jid, timeout=30)
        time.sleep(0.4)
    assert len(calls.of(jid)) == 1


def test_args_that_no_longer_decode_fail_at_once(queue: djobs.Queue) -> None:
    """A stored payload that does not fit the (changed) handler type can never succeed: fail, no retry."""
    queue.register("shape", lambda args: args)  # untyped: anything goes at enqueue
    jid = queue.enqueue("shape", {"x": "not an int", "y": 2}, retries=3)
    calls = Calls()

    def typed(args: Point) -> int:
        calls.add(args)
        return args.x

    other = djobs.Queue(queue.storage)
    other.register("shape", typed, retries=3)
    with running(other):
        with pytest.raises(djobs.JobFailedError):
            other.result(jid, timeout=30)
    job = _job(queue, jid)
    assert job.attempt == 1 and len(calls) == 0
    assert "Point" in (job.last_error or "") or "int" in (job.last_error or "")


@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt])
def test_a_handler_raising_system_exit_spends_its_attempts_instead_of_looping(queue: djobs.Queue,
                                                                             exc: type[BaseException]) -> None:
    """Attempts are counted at claim; a handler that raises SystemExit/KeyboardInterrupt every time must end
    failed once they are spent, not be handed back (attempt refunded) and re-run forever."""
    calls = Calls()

    def handler(ctx: djobs.Context, args: Any) -> None:
        calls.add(ctx.job_id, ctx.job.attempt)
        raise exc()

    queue.register("exits", handler, retries=1)
    jid = queue.enqueue("exits")
    with running(queue, queues={"default": 1}):
        wait_until(lambda: _status(queue, jid) == djobs.JobStatus.FAILED or len(calls) > 10, 30,
                   "the job failed (or looped)")
        time.sleep(0.3)
    assert 1 <= len(calls.of(jid)) <= 2, f"ran {len(calls)} times with retries=1"
    assert _status(queue, jid) == djobs.JobStatus.FAILED


def test_a_result_that_is_not_json_fails_the_job_at_once(queue: djobs.Queue) -> None:
    calls = Calls()

    def handler(ctx: djobs.Context, args: Any) -> object:
        calls.add(ctx.job_id)
        return object()

    queue.register("nojson", handler, retries=3)
    jid = queue.enqueue("nojson")
    with running(queue):
        with pytest.raises(djobs.JobFailedError) as info:
            queue.result(jid, timeout=30)
        time.sleep(0.3)
    assert len(calls) == 1
    assert "JSON" in str(info.value)


# -- handlers: async, shapes, dataclasses, concurrency ------------------------------------------------------------


def test_sync_and_async_handlers_in_one_worker(queue: djobs.Queue) -> None:
    seen: dict[str, Any] = {}

    async def double(ctx: djobs.Context, args: dict[str, int]) -> int:
        asyncio.get_running_loop()  # raises if not on a loop
        await asyncio.sleep(0.01)
        seen[ctx.job_id] = djobs.current_job_id()
        return args["x"] * 2

    async def no_args() -> str:
        await asyncio.sleep(0)
        return "plain"

    async def gives_up(args: Any) -> None:
        raise djobs.NoRetry("async no")

    def triple(args: dict[str, int]) -> int:
        return args["x"] * 3

    queue.register("double", double)
    queue.register("no_args", no_args)
    queue.register("gives_up", gives_up, retries=3)
    queue.register("triple", triple)
    ids = [(queue.enqueue("double", {"x": i}), queue.enqueue("triple", {"x": i})) for i in range(10)]
    plain = queue.enqueue("no_args")
    bad = queue.enqueue("gives_up")
    with running(queue):
        for i, (d, t) in enumerate(ids):
            assert queue.result(d, timeout=30) == 2 * i
            assert queue.result(t, timeout=30) == 3 * i
        assert queue.result(plain, timeout=30) == "plain"
        with pytest.raises(djobs.JobFailedError):
            queue.result(bad, timeout=30)
    assert _job(queue, bad).attempt == 1
    assert all(seen[d] == d for d, _ in ids), "current_job_id() inside an async handler"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_handlers_run_concurrently_up_to_the_queue_concurrency(queue: djobs.Queue, kind: str) -> None:
    """Four jobs on concurrency 4 must all be in their handlers at once (each waits for the others)."""
    lock = threading.Lock()
    state = {"in": 0, "max": 0}
    all_in = threading.Event()

    def enter() -> None:
        with lock:
            state["in"] += 1
            state["max"] = max(state["max"], state["in"])
            if state["in"] == 4:
                all_in.set()

    if kind == "sync":
        def handler(args: Any) -> bool:
            enter()
            return all_in.wait(20)
    else:
        async def handler(args: Any) -> bool:  # type: ignore[misc]
            enter()
            for _ in range(2000):
                if all_in.is_set():
                    return True
                await asyncio.sleep(0.01)
            return False

    queue.register("together", handler, retries=0)
    ids = [queue.enqueue("together") for _ in range(4)]
    with running(queue, queues={"default": 4}):
        assert [queue.result(i, timeout=60) for i in ids] == [True] * 4
    assert state["max"] == 4


def test_dataclass_args_are_decoded_into_the_annotated_type(queue: djobs.Queue) -> None:
    got: list[Any] = []

    def draw(ctx: djobs.Context, args: Shape) -> dict[str, Any]:
        got.append(args)
        return {"n": len(args.points), "sum": sum(p.x + p.y for p in args.points)}

    queue.register("draw", draw)
    a = queue.enqueue("draw", Shape("tri", [Point(1, 2), Point(3, 4), Point(5, 6)], {"z": 1}))
    b = queue.enqueue("draw", {"name": "line", "points": [{"x": 0, "y": 1}, {"x": 2, "y": 3}]})
    assert _job(queue, a).args == {"name": "tri", "points": [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 6}],
                                   "tags": {"z": 1}}
    with running(queue):
        assert queue.result(a, timeout=30) == {"n": 3, "sum": 21}
        assert queue.result(b, timeout=30) == {"n": 2, "sum": 6}
    assert all(isinstance(s, Shape) and all(isinstance(p, Point) for p in s.points) for s in got)
    assert sorted(s.name for s in got) == ["line", "tri"]
    assert [s for s in got if s.name == "tri"][0].tags == {"z": 1}


# -- results ------------------------------------------------------------------------------------------------------


def test_result_returns_value_or_raises(queue: djobs.Queue) -> None:
    def ok(args: dict[str, Any]) -> dict[str, Any]:
        return {"echo": args, "list": [1, 2.5, None, "s"]}

    def bad(args: Any) -> None:
        raise djobs.NoRetry("nope")

    queue.register("ok", ok)
    queue.register("bad", bad)
    good = queue.enqueue("ok", {"a": [1, {"b": True}]})
    failed = queue.enqueue("bad")
    later = queue.enqueue("ok", {}, delay=3600)
    cancelled = queue.enqueue("ok", {}, delay=3600)
    assert queue.cancel_job(cancelled)
    with pytest.raises(djobs.JobCancelledError) as c:
        queue.result(cancelled, timeout=5)
    assert c.value.job.id == cancelled and c.value.job.status == djobs.JobStatus.CANCELLED
    with running(queue):
        assert queue.result(good, timeout=30) == {"echo": {"a": [1, {"b": True}]}, "list": [1, 2.5, None, "s"]}
        with pytest.raises(djobs.JobFailedError) as f:
            queue.result(failed, timeout=30)
        assert f.value.job.status == djobs.JobStatus.FAILED and "nope" in str(f.value)
        with pytest.raises(TimeoutError):
            queue.result(later, timeout=0.3)
        with pytest.raises(TimeoutError):
            queue.result(later, timeout=timedelta(milliseconds=200))
    assert _job(queue, good).result == {"echo": {"a": [1, {"b": True}]}, "list": [1, 2.5, None, "s"]}
    assert _status(queue, later) == djobs.JobStatus.PENDING
    with pytest.raises(djobs.JobNotFound):
        queue.result("no-such-id", timeout=1)


def test_enqueue_many(queue: djobs.Queue) -> None:
    queue.register("item", lambda args: args["i"] * 10)
    ids = queue.enqueue_many([djobs.Sub("item", {"i": i}, priority=i) for i in range(20)])
    assert len(ids) == 20 and len(set(ids)) == 20
    jobs = [_job(queue, i) for i in ids]
    assert [j.args for j in jobs] == [{"i": i} for i in range(20)]
    assert [j.priority for j in jobs] == list(range(20))
    assert all(j.status == djobs.JobStatus.PENDING and j.attempt == 0 for j in jobs)
    assert queue.enqueue_many([]) == []
    with running(queue):
        assert [queue.result(i, timeout=30) for i in ids] == [i * 10 for i in range(20)]
    # all or nothing: one bad member writes nothing
    before = job_count(queue)
    with pytest.raises(TypeError):
        queue.enqueue_many([djobs.Sub("item", {"i": 1}), djobs.Sub("item", {"i": object()})])
    with pytest.raises(djobs.UnknownJobType):
        queue.enqueue_many([djobs.Sub("item", {"i": 1}), djobs.Sub("nope", {})])
    held = queue.enqueue("item", {"i": 0}, unique="once", delay=3600)
    with pytest.raises(djobs.DuplicateJob) as dup:
        queue.enqueue_many([djobs.Sub("item", {"i": 1}), djobs.Sub("item", {"i": 2}, unique="once")])
    assert dup.value.existing_id == held
    assert job_count(queue) == before + 1


def test_a_sub_is_a_frozen_value_with_the_signature_it_always_had() -> None:
    """`Sub` builds itself in one call instead of the generated frozen `__init__`: what users write must
    behave exactly as before (positions, keywords, defaults, errors, equality, replace, immutability)."""
    import dataclasses
    import pickle

    a = djobs.Sub("t", {"x": 1}, 5, 2, "q", 1.5, "u")
    b = djobs.Sub(type="t", args={"x": 1}, priority=5, retries=2, queue="q", delay=1.5, unique="u")
    assert a == b and (a.type, a.args, a.priority, a.retries, a.queue, a.delay, a.unique) == ("t", {"x": 1}, 5, 2, "q", 1.5, "u")
    assert djobs.Sub("t") == djobs.Sub("t", None, None, None, None, None, None) != djobs.Sub("t", {})
    assert repr(djobs.Sub("t")) == "Sub(type='t', args=None, priority=None, retries=None, queue=None, delay=None, unique=None)"
    assert dataclasses.replace(a, queue="other").queue == "other" and a.queue == "q"
    assert [f.name for f in dataclasses.fields(djobs.Sub)] == ["type", "args", "priority", "retries", "queue", "delay", "unique"]
    assert pickle.loads(pickle.dumps(a)) == a and hash(djobs.Sub("t")) == hash(djobs.Sub("t"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.priority = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        djobs.Sub()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        djobs.Sub("t", nope=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        djobs.Sub("t", None, None, None, None, None, None, "extra")  # type: ignore[call-arg]


# -- order, delay, at ---------------------------------------------------------------------------------------------


def test_claim_order_is_priority_then_due_time_then_id(queue: djobs.Queue) -> None:
    order: list[str] = []
    queue.register("o", lambda ctx, args: order.append(ctx.job_id))
    now = datetime.now(UTC)
    specs = []
    for prio in (0, 5, -3, 10):
        for back in (0, 30, 10, 30, 10, 0):  # repeated due times: ties broken by id
            specs.append((prio, back))
    ids = []
    for prio, back in specs:
        at = now - timedelta(seconds=back) if back else None
        ids.append(queue.enqueue("o", None, priority=prio, at=at))
    jobs = [_job(queue, i) for i in ids]
    expected = [j.id for j in sorted(jobs, key=lambda j: (-j.priority, j.run_at, j.id))]
    with running(queue, queues={"default": 1}):
        wait_until(lambda: len(order) == len(ids), 60, "all jobs ran")
    assert order == expected


def test_delay_and_at_hold_a_job_until_its_time(queue: djobs.Queue) -> None:
    started: dict[str, float] = {}
    queue.register("d", lambda ctx, args: started.setdefault(ctx.job_id, time.time()))
    naive_at = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1.2)
    by_delay = queue.enqueue("d", delay=1.0)
    by_td = queue.enqueue("d", delay=timedelta(seconds=1.5))
    by_at = queue.enqueue("d", at=naive_at)  # naive means UTC
    now_job = queue.enqueue("d")
    j_delay, j_td, j_at = _job(queue, by_delay), _job(queue, by_td), _job(queue, by_at)
    for j in (j_delay, j_td, j_at):
        assert j.run_at is not None and j.run_at.tzinfo is not None and j.run_at.utcoffset() == timedelta(0)
    assert abs((j_at.run_at - naive_at.replace(tzinfo=UTC)).total_seconds()) < 0.002  # type: ignore[operator]
    assert 0.95 <= (j_delay.run_at - j_delay.created_at).total_seconds() <= 1.05  # type: ignore[operator]
    assert 1.45 <= (j_td.run_at - j_td.created_at).total_seconds() <= 1.55  # type: ignore[operator]
    with running(queue, queues={"default": 1}):
        for i in (by_delay, by_td, by_at, now_job):
            queue.result(i, timeout=30)
    for j in (j_delay, j_td, j_at):
        assert started[j.id] >= j.run_at.timestamp() - 0.01, f"{j.id} ran before its run_at"  # type: ignore[union-attr]
    assert started[now_job] < min(started[by_delay], started[by_td], started[by_at])


# -- hooks and events ---------------------------------------------------------------------------------------------


def _drain(sub: Any, until: Any = None, timeout: float = 0.0) -> list[Any]:
    out = []
    deadline = time.monotonic() + timeout
    while True:
        ev = sub.get(timeout=0.05)
        if ev is not None:
            out.append(ev)
            if until is not None and until(out):
                return out
            continue
        if time.monotonic() >= deadline:
            return out


def _flaky(ctx: djobs.Context, args: Any) -> None:
    if ctx.job.attempt == 1:
        raise djobs.RetryAfter(0.2, "first try")
    raise ValueError("second try")


def test_the_four_hooks_fire_with_the_right_arguments_and_a_raising_hook_is_harmless(queue: djobs.Queue) -> None:
    log = Calls()

    def explode(*a: Any) -> None:
        raise RuntimeError("hook bug")

    queue.register("ok", lambda args: {"v": 42})
    queue.register("flaky", _flaky, retries=1)
    for reg in (queue.on_job_start, queue.on_job_complete, queue.on_job_fail, queue.on_retry):
        reg(explode)  # registered first: the hooks after it must still run
    queue.on_job_start(lambda job: log.add("start", job.id, job.attempt, job.status))
    queue.on_job_complete(lambda job, result: log.add("complete", job.id, result, job.status))
    queue.on_job_fail(lambda job, exc: log.add("fail", job.id, exc, job.status))
    queue.on_retry(lambda job, attempt, exc: log.add("retry", job.id, attempt, exc))

    ok = queue.enqueue("ok")
    flaky = queue.enqueue("flaky")
    with running(queue):
        assert queue.result(ok, timeout=30) == {"v": 42}
        with pytest.raises(djobs.JobFailedError):
            queue.result(flaky, timeout=30)
        wait_until(lambda: len(log) >= 6, 30, "six hook calls")
        after = queue.enqueue("ok")  # the worker survived the raising hooks
        assert queue.result(after, timeout=30) == {"v": 42}
        wait_until(lambda: len(log) >= 8, 30, "hooks of the last job")
    items = log.items
    assert ("start", ok, 1, djobs.JobStatus.RUNNING) in items
    assert ("complete", ok, {"v": 42}, djobs.JobStatus.COMPLETED) in items
    assert [i[:3] for i in items if i[0] == "start" and i[1] == flaky] == [("start", flaky, 1), ("start", flaky, 2)]
    retries = [i for i in items if i[0] == "retry"]
    assert len(retries) == 1 and retries[0][1:3] == (flaky, 1) and isinstance(retries[0][3], djobs.RetryAfter)
    fails = [i for i in items if i[0] == "fail"]
    assert len(fails) == 1 and fails[0][1] == flaky
    assert isinstance(fails[0][2], ValueError) and str(fails[0][2]) == "second try"
    assert fails[0][3] == djobs.JobStatus.FAILED
    assert not [i for i in items if i[0] in ("complete", "fail", "retry") and i[1] not in (ok, flaky, after)]


def test_event_subscription_gets_lifecycle_events(queue: djobs.Queue) -> None:
    queue.register("ok", lambda args: "fine")
    queue.register("flaky", _flaky, retries=1)
    sub = queue.events()
    ok = queue.enqueue("ok")
    flaky = queue.enqueue("flaky")
    with running(queue):
        queue.result(ok, timeout=30)
        with pytest.raises(djobs.JobFailedError):
            queue.result(flaky, timeout=30)
        evs = _drain(sub, until=lambda out: any(isinstance(e, djobs.JobFailed) for e in out), timeout=10)
    sub.close()
    kinds = [(type(e).__name__, e.job_id) for e in evs if isinstance(e, djobs.JobStarted | djobs.JobCompleted |
                                                                        djobs.JobFailed | djobs.JobRetrying)]
    assert kinds.count(("JobStarted", ok)) == 1 and kinds.count(("JobCompleted", ok)) == 1
    assert [k for k in kinds if k[1] == flaky] == [
        ("JobStarted", flaky), ("JobRetrying", flaky), ("JobStarted", flaky), ("JobFailed", flaky)
    ]
    completed = next(e for e in evs if isinstance(e, djobs.JobCompleted))
    assert completed.job.status == djobs.JobStatus.COMPLETED and completed.job.result == "fine"
    retrying = next(e for e in evs if isinstance(e, djobs.JobRetrying))
    assert retrying.attempt == 1 and "first try" in retrying.error
    assert retrying.next_run_at is not None and retrying.next_run_at > retrying.timestamp
    failed = next(e for e in evs if isinstance(e, djobs.JobFailed))
    assert "second try" in failed.error and failed.job.status == djobs.JobStatus.FAILED
    for e in evs:
        assert e.timestamp.tzinfo is not None


def test_lifecycle_events_are_written_to_the_event_log(queue: djobs.Queue) -> None:
    queue.register("ok", lambda args: "fine")
    queue.register("flaky", _flaky, retries=1)
    ok = queue.enqueue("ok")
    flaky = queue.enqueue("flaky")
    with running(queue) as w:
        queue.result(ok, timeout=30)
        with pytest.raises(djobs.JobFailedError):
            queue.result(flaky, timeout=30)
        wid = w.id
    ok_kinds = [e.kind for e in queue.events_since(0, limit=1000, job_id=ok)]
    flaky_kinds = [e.kind for e in queue.events_since(0, limit=1000, job_id=flaky)]
    assert [k for k in ok_kinds if k.startswith("job_")] == ["job_started", "job_completed"]
    assert [k for k in flaky_kinds if k.startswith("job_")] == [
        "job_started", "job_retrying", "job_started", "job_failed"
    ]
    evs = queue.events_since(0, limit=1000, job_id=flaky)
    assert all(e.worker_id == wid for e in evs if e.kind in ("job_started", "job_retrying", "job_failed"))
    assert all(e.timestamp.tzinfo is not None for e in evs)


def test_retry_defaults_and_backoff_schedule(queue: djobs.Queue) -> None:
    from djobs.retry import job_backoff

    queue.register("plain", lambda args: None)
    assert _job(queue, queue.enqueue("plain")).max_retries == 3
    for attempt, base in ((1, 1), (2, 2), (3, 4), (4, 8), (6, 32), (7, 60), (12, 60), (40, 60)):
        for _ in range(50):
            assert base * 0.9 - 1e-9 <= job_backoff(attempt) <= base * 1.1 + 1e-9, (attempt, base)


def test_a_full_subscription_drops_its_oldest_events_and_counts_them(queue: djobs.Queue) -> None:
    small = queue.events(buffer=3)
    big = queue.events()
    for i in range(10):
        queue.emit_custom(None, "tick", i)
    assert [e.data for e in _drain(small)] == [7, 8, 9]
    assert small.dropped == 7
    assert [e.data for e in _drain(big)] == list(range(10)) and big.dropped == 0
    # a subscriber nobody reads never blocks a worker
    queue.register("n", lambda args: None)
    ids = queue.enqueue_many([djobs.Sub("n", None) for _ in range(20)])
    with running(queue):
        for i in ids:
            queue.result(i, timeout=30)
    assert small.dropped == 7 + 40 - 3  # 20 JobStarted + 20 JobCompleted through a buffer of 3
    small.close()
    big.close()


# -- bad input ----------------------------------------------------------------------------------------------------


def test_unknown_job_type_raises_and_writes_nothing(queue: djobs.Queue) -> None:
    with pytest.raises(djobs.UnknownJobType) as info:
        queue.enqueue("no-such-type", {"a": 1})
    assert "no-such-type" in str(info.value)
    assert isinstance(info.value, LookupError)
    assert job_count(queue) == 0


@pytest.mark.parametrize(
    "args",
    [{"x": object()}, {"x": float("nan")}, lambda: None, {"when": threading.Lock()}],
    ids=["object", "nan", "function", "lock"],
)
def test_args_that_are_not_json_raise_type_error_and_write_nothing(queue: djobs.Queue, args: Any) -> None:
    queue.register("any", lambda args: None)
    with pytest.raises(TypeError):
        queue.enqueue("any", args)
    with pytest.raises(TypeError):  # a batch encodes its args together: the bad one's error is still TypeError
        queue.enqueue_many([djobs.Sub("any", {"a": 1}), djobs.Sub("any", args), djobs.Sub("any", [2])])
    assert job_count(queue) == 0
    ids = queue.enqueue_many([djobs.Sub("any", {"a": 1}), djobs.Sub("any", [2])])  # and the encoder still works
    assert [queue.get_job(i).args for i in ids] == [{"a": 1}, [2]]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "args",
    [{"x": 1}, {"x": 1, "y": 2, "z": 3}, {"x": "1", "y": 2}, [1, 2], None, Shape("s", [])],
    ids=["missing-field", "unknown-field", "wrong-type", "list", "none", "other-dataclass"],
)
def test_args_that_do_not_fit_the_dataclass_raise_type_error_and_write_nothing(queue: djobs.Queue,
                                                                               args: Any) -> None:
    def typed(args: Point) -> int:
        return args.x

    queue.register("typed", typed)
    with pytest.raises(TypeError):
        queue.enqueue("typed", args)
    with pytest.raises(TypeError):
        queue.enqueue_many([djobs.Sub("typed", Point(1, 2)), djobs.Sub("typed", args)])
    assert job_count(queue) == 0
    assert queue.enqueue("typed", Point(1, 2))  # and a fitting one goes through


@pytest.mark.parametrize(
    "url",
    ["", "nonsense", "djobs.db", "mysql://user@localhost/db", "sqlite://", "redis://localhost:6379/0"],
)
def test_bad_url_raises_value_error(url: str) -> None:
    with pytest.raises(ValueError):
        djobs.connect(url)


def test_unreachable_postgres_raises_storage_unavailable_quickly() -> None:
    t0 = time.monotonic()
    with pytest.raises(djobs.StorageUnavailable):
        djobs.connect("postgresql://postgres@127.0.0.1:1/test")
    assert time.monotonic() - t0 < 15  # a refused connection must not hang behind retries


def test_sqlite_in_a_missing_directory_raises_storage_unavailable(tmp_path: Path) -> None:
    with pytest.raises(djobs.StorageUnavailable):
        djobs.connect(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")
    assert not (tmp_path / "no").exists()


def test_negative_retries_are_refused(queue: djobs.Queue) -> None:
    queue.register("r", lambda args: None)
    with pytest.raises(ValueError):
        queue.enqueue("r", retries=-1)
    with pytest.raises(ValueError):
        queue.register("r2", lambda args: None, retries=-1)
    assert job_count(queue) == 0


# -- job records, retry_job, cancel ---------------------------------------------------------------------------


def test_job_record_fields_through_a_run(queue: djobs.Queue) -> None:
    seen: dict[str, Any] = {}
    release = threading.Event()

    def helper() -> None:  # code the handler calls finds the job without ctx
        seen["current"] = djobs.current_job()
        seen["current_id"] = djobs.current_job_id()

    def handler(ctx: djobs.Context, args: dict[str, Any]) -> dict[str, Any]:
        helper()
        seen["ctx_job"] = ctx.job
        release.wait(30)
        return {"got": args}

    queue.register("rec", handler)
    assert queue.get_job("no-such-id") is None
    assert djobs.current_job() is None and djobs.current_job_id() is None
    jid = queue.enqueue("rec", {"a": 1}, priority=3, retries=2, queue="default")
    job = _job(queue, jid)
    assert (job.id, job.type, job.queue, job.args, job.priority) == (jid, "rec", "default", {"a": 1}, 3)
    assert (job.status, job.attempt, job.max_retries, job.result, job.last_error) == (
        djobs.JobStatus.PENDING, 0, 2, None, None
    )
    assert job.started_at is None and job.completed_at is None and job.locked_by is None
    for t in (job.created_at, job.updated_at, job.run_at):
        assert t is not None and t.utcoffset() == timedelta(0)
    with running(queue) as w:
        first = wait_until(lambda: (j := _job(queue, jid)).status == djobs.JobStatus.RUNNING and j, 30, "running")
        assert first.attempt == 1 and first.locked_by == w.id and first.started_at is not None
        assert first.last_heartbeat_at is not None
        wait_until(
            lambda: _job(queue, jid).last_heartbeat_at > first.last_heartbeat_at,  # type: ignore[operator]
            30, "the running job's heartbeat to advance",
        )
        assert seen["current_id"] == jid and seen["current"].id == jid and seen["ctx_job"].attempt == 1
        release.set()
        assert queue.result(jid, timeout=30) == {"got": {"a": 1}}
    done = _job(queue, jid)
    assert done.status == djobs.JobStatus.COMPLETED and done.locked_by is None
    assert done.completed_at is not None and done.started_at is not None
    assert done.created_at <= done.started_at <= done.completed_at  # type: ignore[operator]


def test_retry_job_requeues_failed_and_cancelled_jobs_only(queue: djobs.Queue) -> None:
    calls = Calls()
    fail = {"on": True}

    def handler(ctx: djobs.Context, args: Any) -> str:
        calls.add(ctx.job_id, ctx.job.attempt)
        if fail["on"]:
            raise djobs.NoRetry("not yet")
        return "ok"

    queue.register("r", handler, retries=1)
    jid = queue.enqueue("r")
    cancelled = queue.enqueue("r", delay=3600)
    assert queue.cancel_job(cancelled)
    assert not queue.cancel_job(cancelled), "cancelling a finished job reports False"
    with running(queue):
        with pytest.raises(djobs.JobFailedError):
            queue.result(jid, timeout=30)
        fail["on"] = False
        assert queue.retry_job(jid)
        assert queue.result(jid, timeout=30) == "ok"
        assert [a for _, a in calls.of(jid)] == [1, 1], "a requeued job starts its attempts again"
        assert not queue.retry_job(jid), "a completed job is not requeued"
        assert queue.retry_job(cancelled)
        assert queue.result(cancelled, timeout=30) == "ok"
    with pytest.raises(djobs.JobNotFound):
        queue.retry_job("no-such-id")
    with pytest.raises(djobs.JobNotFound):
        queue.cancel_job("no-such-id")


def test_a_cancelled_retrying_job_never_runs_again(queue: djobs.Queue) -> None:
    calls = Calls()

    def handler(ctx: djobs.Context, args: Any) -> None:
        calls.add(ctx.job_id)
        raise djobs.RetryAfter(0.5, "soon")

    queue.register("r", handler, retries=5)
    jid = queue.enqueue("r")
    with running(queue):
        wait_until(lambda: _status(queue, jid) == djobs.JobStatus.RETRYING, 30, "retrying")
        assert queue.cancel_job(jid)
        with pytest.raises(djobs.JobCancelledError):
            queue.result(jid, timeout=5)
        time.sleep(1.0)  # past its run_at: a claim would have happened by now
    assert len(calls.of(jid)) == 1
    assert _status(queue, jid) == djobs.JobStatus.CANCELLED


def test_ids_sort_in_creation_order_within_a_millisecond() -> None:
    """Claims break priority and due-time ties by id: one process's ids must sort as they were made."""
    from djobs.jobs import new_id

    ids = [new_id() for _ in range(10_000)]  # many per millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_ids_made_in_batches_sort_with_single_ids_and_are_uuid7() -> None:
    """A batch of 10,000 ids overflows one millisecond's 4,096 sequence numbers; with single ids around it,
    all must still sort in creation order, be distinct, and read as RFC 9562 version-7 UUIDs."""
    import uuid

    from djobs.jobs import new_id, new_ids

    ids = [new_id(), *new_ids(10_000), new_id(), *new_ids(1), *new_ids(300)]
    assert len(ids) == 10_303
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for text in ids[:50] + ids[4000:4200] + ids[-50:]:
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 7 and u.variant == uuid.RFC_4122
    assert new_ids(0) == []
    batch = new_ids(1000)  # the 62 random bits are random in a batch too: not cleared by the variant's mask
    assert len({t[-12:] for t in batch}) == 1000 and {t[19] for t in batch} == set("89ab")
