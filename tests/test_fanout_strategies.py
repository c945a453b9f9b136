"""Fan-out / fan-in with an in-process worker, on SQLite and PostgreSQL.

Ports of FanOut_Basic, FanOut_FailFast_StopsOnFirstFailure, FanOut_CollectAll_ReturnsPartialResults,
FanOut_Threshold_SucceedsAboveThreshold / FailsBelowThreshold and FanOut_CancelledSubJobsCountTowardCompletion,
plus time-outs, per-fan-out queue/retries, cancel_on_parent_failure, subtree cancel, nested fan-outs and the
backstop that resumes a parent left waiting on a decided fan-out. Sub-jobs are "rec" jobs (ledger lines
"rec TAG ATTEMPT PID"); gated ones wait for a file the test creates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durable_handlers import (
    count,
    entries,
    in_process_worker,
    open_gate,
    sql,
    wait_status,
    wait_until,
)

import djobs

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def worker(q: djobs.Queue, led: Path) -> Iterator[djobs.Worker]:
    w = in_process_worker(q, queues={"default": 8, "q2": 2, "q3": 2})
    w.start()
    yield w
    open_gate(led, "ALL")  # let handlers still waiting on a gate finish, so the drain is short
    w.stop(timeout=5)


def rec(tag: str, **kw: Any) -> dict[str, Any]:
    opts = {k: kw.pop(k) for k in ("queue", "retries", "priority") if k in kw}
    return {"type": "rec", "args": {"tag": tag, **kw}, **opts}


def fan_summary(led: Path, kind: str, tag: str) -> list[list[dict[str, Any]]]:
    return [json.loads(e[2]) for e in entries(led, kind) if e[1] == tag]


def sub_status(q: djobs.Queue, parent: str) -> list[str]:
    return [j.status.value for j in q.sub_jobs(parent)]


def test_fanout_basic(q: djobs.Queue, led: Path) -> None:
    """Results in submission order whatever the finishing order, JSON round-tripped; the parent waits
    without holding a worker slot and resumes with its attempt refunded."""
    subs = [rec(f"b{i}", value=[i, (i, "t")], gate="go", priority=i) for i in range(5)]
    pid = q.enqueue("fan", {"tag": "basic", "subs": subs})
    worker = in_process_worker(q, queues={"default": 5})  # five slots: the parent must free its own
    worker.start()
    try:
        _fanout_basic(q, led, pid, worker)
    finally:
        open_gate(led, "ALL")
        worker.stop(timeout=5)


def _fanout_basic(q: djobs.Queue, led: Path, pid: str, worker: djobs.Worker) -> None:
    wait_until(lambda: len(entries(led, "rec")) == 5, 30, "all five sub-jobs running at once")
    parent = q.get_job(pid)
    assert parent is not None and parent.status == djobs.JobStatus.WAITING
    assert parent.attempt == 0  # refunded at suspension
    assert worker.running_job_count == 5  # the waiting parent holds no slot: all five run
    children = q.sub_jobs(pid)
    assert [j.parent_id for j in children] == [pid] * 5
    assert sorted(j.args["tag"] for j in children) == [f"b{i}" for i in range(5)]
    assert sorted((j.args["tag"], j.priority) for j in children) == [(f"b{i}", i) for i in range(5)]
    open_gate(led, "go")
    job = wait_status(q, pid, "completed")
    assert job.attempt == 1
    assert job.result["values"] == [[i, [i, "t"]] for i in range(5)]
    assert job.result["ok"] == 5 and job.result["all"] is True and job.result["errors"] == []
    (results,) = fan_summary(led, "fan-results", "basic")
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    by_tag = {j.args["tag"]: j.id for j in children}
    assert [r["job_id"] for r in results] == [by_tag[f"b{i}"] for i in range(5)]
    assert count(led, "fan-run", "basic") == 2  # first run, then the replay after the fan-in
    assert all(count(led, "rec-done", f"b{i}") == 1 for i in range(5))
    cps = q.checkpoints(pid)
    assert [(c.call_index, c.name) for c in cps] == [(0, "fan_out")]


def test_fanout_module_twin_and_calls_around_it(q: djobs.Queue, led: Path, worker: djobs.Worker) -> None:
    """djobs.fan_out works like ctx.fan_out; calls before and after it keep their indexes on replay."""
    pid = q.enqueue(
        "fan", {"tag": "twin", "subs": [rec("t0"), rec("t1")], "twin": True, "before": True, "after": True}
    )
    job = wait_status(q, pid, "completed")
    assert job.result["values"] == ["t0", "t1"]
    assert count(led, "step", "twin", "0") == 1 and count(led, "step", "twin", "99") == 1
    assert [(c.call_index, c.name) for c in q.checkpoints(pid)] == [(0, "step"), (1, "fan_out"), (2, "step")]


def test_async_parent_fans_out_to_async_sub_jobs(q: djobs.Queue, led: Path) -> None:
    @q.handler("async-item")
    async def item(args: dict) -> int:
        return int(args["n"]) * 2

    @q.handler("async-parent")
    async def parent(ctx: djobs.Context, args: dict) -> list:
        results = ctx.fan_out(
            [djobs.Sub("async-item", {"n": n}) for n in range(4)], strategy=djobs.COLLECT_ALL
        )
        return djobs.values(results)

    w = in_process_worker(q)  # started after registering: a worker claims the types it knows at start
    w.start()
    try:
        pid = q.enqueue("async-parent", {})
        assert wait_status(q, pid, "completed").result == [0, 2, 4, 6]
    finally:
        w.stop(timeout=5)


def test_fanout_empty_returns_nothing(q: djobs.Queue, led: Path, worker: djobs.Worker) -> None:
    pid = q.enqueue("fan", {"tag": "empty", "subs": []})
    job = wait_status(q, pid, "completed")
    assert job.result == {"values": [], "ok": 0, "all": True, "errors": []}
    assert q.sub_jobs(pid) == []


def test_fanout_fail_fast_stops_on_first_failure(q: djobs.Queue, led: Path, worker: djobs.Worker) -> None:
    subs = [rec("ff0", gate="ff"), rec("ff1", fail="noretry"), rec("ff2", gate="ff"), rec("ff3", gate="ff")]
    pid = q.enqueue("fan", {"tag": "ff", "subs": subs, "strategy": "fail_fast"})
    job = wait_status(q, pid, "failed")
    assert job.attempt == 1  # FanOutFailed is a NoRetry: no retry of the parent
    assert "FanOutFailed" in (job.last_error or "")
    # The parent failed while the gated sub-jobs were still unfinished.
    assert [s in ("pending", "running") for s in sub_status(q, pid)] == [True, False, True, True]
    (results,) = fan_summary(led, "fan-failed", "ff")
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["ok"] for r in results] == [False, False, False, False]
    assert results[1]["error"] == "SubJobError" and results[1]["status"] == "failed"
    # Without cancel_on_parent_failure the other sub-jobs go on and finish.
    open_gate(led, "ff")
    for child in q.sub_jobs(pid):
        if child.args["tag"] != "ff1":
            wait_status(q, child.id, "completed")
    assert count(led, "rec", "ff1") == 1  # NoRetry: not retried


def test_fanout_collect_all_returns_partial_results(q: djobs.Queue, led: Path, worker: djobs.Worker) -> None:
    subs = [
        rec("c0", value=0),
        rec("c1", fail="noretry"),
        rec("c2", value={"k": (2,)}),
        rec("c3", fail="error", retries=0),
    ]
    pid = q.enqueue("fan", {"tag": "ca", "subs": subs, "strategy": "collect_all"})
    job = wait_status(q, pid, "completed")
    assert job.result == {
        "values": [0, {"k": [2]}],
        "ok": 2,
        "all": False,
        "errors": ["SubJobError", "SubJobError"],
    }
    (results,) = fan_summary(led, "fan-results", "ca")
    assert [(r["index"], r["ok"], r["status"]) for r in results] == [
        (0, True, None),
        (1, False, "failed"),
        (2, True, None),
        (3, False, "failed"),
    ]
    assert count(led, "rec", "c3") == 1  # retries=0 on the Sub: ran once


def test_result_helpers() -> None:
    err = djobs.SubJobError("j1", "failed", "boom")
    rs = [djobs.Result(0, "j0", value=1), djobs.Result(1, "j1", error=err), djobs.Result(2, "j2", value=None)]
    assert djobs.values(rs) == [1, None]
    assert djobs.partition(rs) == ([1, None], [err])
    assert djobs.all_succeeded(rs) is False and djobs.all_succeeded(rs[::2]) is True
    assert djobs.success_count(rs) == 2
    assert [r.ok for r in rs] == [True, False, True]
    assert issubclass(djobs.FanOutFailed, djobs.NoRetry)
    assert djobs.FanOutFailed("x", rs).results == rs
    with pytest.raises(ValueError):
        djobs.threshold(1.5)


def test_fanout_threshold_succeeds_above_threshold(q: djobs.Queue, led: Path, worker: djobs.Worker) -> None:
    subs = [rec("t0"), rec("t1", fail="noretry"), rec("t2"), rec("t3", fail="noretry"), rec("t4")]
    pid = q.enqueue("fan", {"tag": "th", "subs": subs, "strategy": "threshold:0.6"})  # needs ceil(3.0) = 3
    job = wait_status(q, pid, "completed")
    assert job.result["values"] == ["t0", "t2", "t4"] and job.result["ok"] == 3


def test_fanout_threshold_fails_below_threshold(q: djobs.Queue, led: Path, worker: djobs.Worker) -> None:
    """threshold(0.8) of 5 needs 4: two failures make it impossible, so it fails before the rest finish."""
    subs = [
        rec("u0", gate="u"),
        rec("u1", fail="noretry"),
        rec("u2", gate="u"),
        rec("u3", fail="noretry"),
        rec("u4", gate="u"),
    ]
    pid = q.enqueue("fan", {"tag": "tb", "subs": subs, "strategy": "threshold:0.8"})
    job = wait_status(q, pid, "failed")
    assert "FanOutFailed" in (job.last_error or "")
    assert [s in ("pending", "running") for s in sub_status(q, pid)] == [True, False, True, False, True]
    (results,) = fan_summary(led, "fan-failed", "tb")
    assert [r["status"] for r in results if not r["ok"] and r["index"] in (1, 3)] == ["failed", "failed"]
    open_gate(led, "u")


def test_fanout_threshold_exactly_met_and_just_missed(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    met = q.enqueue(
        "fan",
        {"tag": "m", "subs": [rec("m0"), rec("m1"), rec("m2", fail="noretry")], "strategy": "threshold:0.66"},
    )
    missed = q.enqueue(
        "fan",
        {"tag": "x", "subs": [rec("x0"), rec("x1"), rec("x2", fail="noretry")], "strategy": "threshold:0.67"},
    )
    assert wait_status(q, met, "completed").result["ok"] == 2  # ceil(1.98) = 2
    assert wait_status(q, missed, "failed").status == djobs.JobStatus.FAILED  # ceil(2.01) = 3


def test_fanout_cancelled_sub_jobs_count_toward_completion(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    subs = [rec("k0", value="done"), rec("k1", gate="never"), rec("k2", gate="never")]
    pid = q.enqueue("fan", {"tag": "cx", "subs": subs, "strategy": "collect_all"})
    wait_until(
        lambda: count(led, "rec", "k1") == 1 and count(led, "rec", "k2") == 1, 30, "gated subs running"
    )
    kids = {j.args["tag"]: j.id for j in q.sub_jobs(pid)}
    wait_status(q, kids["k0"], "completed")
    assert q.get_job(pid).status == djobs.JobStatus.WAITING  # type: ignore[union-attr]
    assert q.cancel_job(kids["k1"]) is True
    assert q.cancel_job(kids["k2"]) is True
    job = wait_status(q, pid, "completed")
    assert job.result == {"values": ["done"], "ok": 1, "all": False, "errors": ["SubJobError", "SubJobError"]}
    (results,) = fan_summary(led, "fan-results", "cx")
    assert [r["status"] for r in results] == [None, "cancelled", "cancelled"]
    wait_until(
        lambda: count(led, "cancelled", "k1") == 1 and count(led, "cancelled", "k2") == 1,
        10,
        "the running sub-job handlers to see ctx.cancelled",
    )


def test_fanout_cancelled_sub_job_fails_a_fail_fast_parent(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    pid = q.enqueue("fan", {"tag": "cf", "subs": [rec("p0", gate="never"), rec("p1", gate="never")]})
    wait_until(lambda: len(q.sub_jobs(pid)) == 2, 30, "sub-jobs written")
    q.cancel_job(q.sub_jobs(pid)[0].id)
    job = wait_status(q, pid, "failed")
    assert "FanOutFailed" in (job.last_error or "")
    (results,) = fan_summary(led, "fan-failed", "cf")
    assert results[0]["status"] == "cancelled"
    q.cancel_job(q.sub_jobs(pid)[1].id)


def test_fanout_timeout_cancels_unfinished_and_counts_them_failed(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    subs = [rec("o0", value="quick"), rec("o1", gate="never"), rec("o2", gate="never")]
    pid = q.enqueue("fan", {"tag": "to", "subs": subs, "strategy": "collect_all", "timeout": 3.0})
    job = wait_status(q, pid, "completed", timeout=30)
    assert job.result == {
        "values": ["quick"],
        "ok": 1,
        "all": False,
        "errors": ["SubJobError", "SubJobError"],
    }
    kids = {j.args["tag"]: j for j in q.sub_jobs(pid)}
    assert [kids[t].status.value for t in ("o0", "o1", "o2")] == ["completed", "cancelled", "cancelled"]
    wait_until(
        lambda: count(led, "cancelled", "o1") + count(led, "cancelled", "o2") == 2,
        10,
        "the timed-out handlers to see ctx.cancelled",
    )


def test_fanout_timeout_fails_a_fail_fast_parent(q: djobs.Queue, led: Path, worker: djobs.Worker) -> None:
    pid = q.enqueue("fan", {"tag": "tf", "subs": [rec("f0", gate="never")], "timeout": 0.5})
    job = wait_status(q, pid, "failed", timeout=30)
    assert "FanOutFailed" in (job.last_error or "")
    assert sub_status(q, pid) == ["cancelled"]


def test_fanout_queue_and_retries_apply_unless_a_sub_sets_its_own(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    subs = [rec("r0"), rec("r1", queue="q3", retries=2), rec("r2", retries=1), rec("r3", queue="default")]
    pid = q.enqueue("fan", {"tag": "qr", "subs": subs, "queue": "q2", "retries": 0})
    wait_status(q, pid, "completed")
    kids = {j.args["tag"]: j for j in q.sub_jobs(pid)}
    assert [(kids[t].queue, kids[t].max_retries) for t in ("r0", "r1", "r2", "r3")] == [
        ("q2", 0),
        ("q3", 2),
        ("q2", 1),
        ("default", 0),
    ]
    # Without fan-out options, sub-jobs take the handler's defaults ("rec": default queue, 3 retries).
    pid2 = q.enqueue("fan", {"tag": "qd", "subs": [rec("d0")]})
    wait_status(q, pid2, "completed")
    (kid,) = q.sub_jobs(pid2)
    assert (kid.queue, kid.max_retries) == ("default", 3)


def test_fanout_sub_retries_are_used(q: djobs.Queue, led: Path, worker: djobs.Worker) -> None:
    pid = q.enqueue("fan", {"tag": "once", "subs": [rec("o", fail="once")], "retries": 1})
    job = wait_status(q, pid, "completed")
    assert job.result["values"] == ["o"]
    assert [e[2] for e in entries(led, "rec") if e[1] == "o"] == ["1", "2"]


@pytest.mark.parametrize("cop", [True, False])
def test_fanout_cancel_on_parent_failure(q: djobs.Queue, led: Path, worker: djobs.Worker, cop: bool) -> None:
    tag = f"cop{int(cop)}"
    subs = [rec(f"{tag}-bad", fail="noretry"), rec(f"{tag}-a", gate=tag), rec(f"{tag}-b", gate=tag)]
    pid = q.enqueue("fan", {"tag": tag, "subs": subs, "cop": cop})
    wait_status(q, pid, "failed")
    kids = {j.args["tag"]: j.id for j in q.sub_jobs(pid)}
    if cop:
        for t in ("a", "b"):
            wait_status(q, kids[f"{tag}-{t}"], "cancelled", timeout=10)
            # A handler that had started sees ctx.cancelled before the gate opens.
            wait_until(
                lambda t=t: count(led, "rec", f"{tag}-{t}") == count(led, "cancelled", f"{tag}-{t}"),  # type: ignore[misc]
                10,
                f"the cancelled sub-job {t} to stop",
            )
        open_gate(led, tag)
        assert count(led, "rec-done", f"{tag}-a") + count(led, "rec-done", f"{tag}-b") == 0
    else:
        open_gate(led, tag)
        for t in ("a", "b"):
            wait_status(q, kids[f"{tag}-{t}"], "completed")


def test_cancelling_a_parent_cancels_its_whole_subtree(
    q: djobs.Queue, led: Path, worker: djobs.Worker
) -> None:
    child = {"type": "fan", "args": {"tag": "", "subs": []}}
    children = []
    for c in range(2):
        spec = json.loads(json.dumps(child))
        spec["args"]["tag"] = f"ch{c}"
        spec["args"]["subs"] = [rec(f"g{c}{g}", gate="never") for g in range(2)]
        children.append(spec)
    pid = q.enqueue("fan", {"tag": "root", "subs": children})
    wait_until(lambda: len(entries(led, "rec")) == 4, 30, "all four grandchildren running")
    assert q.cancel_job(pid) is True
    tree = [pid]
    for kid in q.sub_jobs(pid):
        tree.append(kid.id)
        tree.extend(g.id for g in q.sub_jobs(kid.id))
    assert len(tree) == 7
    assert [q.get_job(j).status.value for j in tree] == ["cancelled"] * 7  # type: ignore[union-attr]
    wait_until(lambda: len(entries(led, "cancelled")) == 4, 10, "grandchildren handlers to see ctx.cancelled")
    assert q.cancel_job(pid) is False  # already finished


def test_nested_fanouts(q: djobs.Queue, led: Path, worker: djobs.Worker) -> None:
    children = [
        {
            "type": "fan",
            "args": {"tag": f"n{c}", "subs": [rec(f"n{c}-{g}", value=c * 10 + g) for g in range(3)]},
        }
        for c in range(3)
    ]
    pid = q.enqueue("fan", {"tag": "top", "subs": children, "strategy": "collect_all"})
    job = wait_status(q, pid, "completed", timeout=60)
    assert [v["values"] for v in job.result["values"]] == [[0, 1, 2], [10, 11, 12], [20, 21, 22]]
    assert all(count(led, "rec-done", f"n{c}-{g}") == 1 for c in range(3) for g in range(3))
    assert all(q.get_job(k.id).parent_id == pid for k in q.sub_jobs(pid))  # type: ignore[union-attr]


def test_waiting_parent_with_decided_fanout_is_resumed_by_a_live_worker(q: djobs.Queue, led: Path) -> None:
    """The deciding worker died between writes: the fan-out is decided (or all its sub-jobs finished) but
    the parent is still `waiting`. Any live worker resumes it within seconds. Simulated with SQL."""
    parents = {}
    w = in_process_worker(q, queues={"default": 4})  # serves "default" only; the sub-jobs go to "held"
    w.start()
    try:
        for variant in ("decided", "undecided"):
            parents[variant] = q.enqueue(
                "fan", {"tag": variant, "subs": [rec(f"{variant}{i}") for i in range(3)], "queue": "held"}
            )
        for pid in parents.values():
            wait_status(q, pid, "waiting")
    finally:
        w.stop(timeout=5)
    for variant, pid in parents.items():
        for i, kid in enumerate(q.sub_jobs(pid)):
            sql(
                q,
                "UPDATE djobs_jobs SET status = 'completed', result = ?, completed_at = {now} WHERE id = ?",
                (json.dumps(f"sql{i}"), kid.id),
            )
        if variant == "decided":
            sql(q, "UPDATE djobs_fanouts SET decided = 'succeeded' WHERE parent_id = ?", (pid,))
    assert [q.get_job(p).status.value for p in parents.values()] == ["waiting", "waiting"]  # type: ignore[union-attr]
    w2 = in_process_worker(q, queues={"default": 4})
    w2.start()
    try:
        for pid in parents.values():
            job = wait_status(q, pid, "completed", timeout=15)
            assert job.result["values"] == ["sql0", "sql1", "sql2"]
    finally:
        w2.stop(timeout=5)
    assert len(entries(led, "rec")) == 0
