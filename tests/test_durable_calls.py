"""Durable calls and checkpoints, on SQLite and PostgreSQL.

Ports of the Go library's CrashRecoveryReplay, Call_ResumesAfterWorkerKilled,
Call_MultipleResumesPreservesCheckpoints and Call_CheckpointedErrorReturned, plus determinism violations,
nested calls, named checkpoints, the module-level twins and CheckpointSaved events. Side effects are counted
in an fsync'd ledger (see durable_handlers.py); a step whose checkpoint was written must never run again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from durable_handlers import (
    WorkerProcs,
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


def run_to_end(
    q: djobs.Queue, job_id: str, *statuses: str, timeout: float = 30.0, **opts: object
) -> djobs.Job:
    w = in_process_worker(q, **opts)
    w.start()
    try:
        return wait_status(q, job_id, *(statuses or ("completed",)), timeout=timeout)
    finally:
        w.stop(timeout=5)


def test_crash_recovery_replay(q: djobs.Queue, led: Path) -> None:
    """A 3-step workflow fails once after step 2; on retry steps 1-2 do not re-run and step 3 runs once."""
    jid = q.enqueue("workflow", {"wf": "w", "steps": 3, "fail_after": 1})
    job = run_to_end(q, jid)
    assert job.attempt == 2
    assert [count(led, "step", "w", str(n)) for n in range(3)] == [1, 1, 1]
    assert count(led, "wf-run", "w") == 2
    # Steps 1 and 2 ran on attempt 1, step 3 on attempt 2.
    assert [e[3] for e in entries(led, "step")] == ["1", "1", "2"]
    assert job.result == [{"wf": "w", "n": n, "sq": n * n} for n in range(3)]
    cps = q.checkpoints(jid)
    assert [(c.call_index, c.name, c.value) for c in cps] == [
        (n, "step", {"wf": "w", "n": n, "sq": n * n}) for n in range(3)
    ]
    assert all(c.error is None for c in cps)


def test_call_resumes_after_worker_killed(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    """kill -9 of a worker process mid-step: the next worker re-runs only the unfinished step."""
    jid = q.enqueue("workflow", {"wf": "k", "steps": 4, "hang_at": 2, "gate": "g"})
    first = procs.start()
    wait_until(lambda: count(led, "hang-start", "k") == 1, 60, "the worker to reach the hanging step")
    assert status(q, jid) == "running"
    procs.kill9(first)
    open_gate(led, "g")  # the re-run of the step may finish now
    second = procs.start()
    procs.wait_registered(q, second)
    job = wait_status(q, jid, "completed", timeout=60)
    assert job.attempt == 2  # the kill cost an attempt (not refunded on reclaim)
    assert [count(led, "step", "k", str(n)) for n in (0, 1, 3)] == [1, 1, 1]
    starts = entries(led, "hang-start")
    assert [(e[2], e[3]) for e in starts] == [("1", str(first.pid)), ("2", str(second.pid))]
    assert count(led, "hang-done", "k") == 1
    steps = {e[2]: e for e in entries(led, "step")}
    assert steps["0"][4] == steps["1"][4] == str(first.pid)
    assert steps["3"][4] == str(second.pid)
    assert job.result[2] == "hung k"
    assert [c.call_index for c in q.checkpoints(jid)] == [0, 1, 2, 3]


def status(q: djobs.Queue, jid: str) -> str:
    job = q.get_job(jid)
    assert job is not None
    return job.status.value


def test_call_multiple_resumes_preserve_checkpoints(q: djobs.Queue, led: Path) -> None:
    """Attempt k completes step k-1 then fails: every resume replays all earlier checkpoints untouched."""
    jid = q.enqueue("workflow", {"wf": "c", "steps": 5, "creep": True}, retries=5)
    job = run_to_end(q, jid)
    assert job.attempt == 5
    assert [count(led, "step", "c", str(n)) for n in range(5)] == [1] * 5
    # Step n ran on attempt n+1 and never again.
    assert [(e[2], e[3]) for e in entries(led, "step")] == [(str(n), str(n + 1)) for n in range(5)]
    assert count(led, "wf-run", "c") == 5
    cps = q.checkpoints(jid)
    assert [c.call_index for c in cps] == [0, 1, 2, 3, 4]
    assert job.result == [c.value for c in cps]


def test_call_checkpointed_error_returned(q: djobs.Queue, led: Path) -> None:
    """A NoRetry raised inside a call is checkpointed; replay raises it again without re-running the call."""
    jid = q.enqueue("catch-noretry", {"wf": "e"})
    job = run_to_end(q, jid)
    assert job.attempt == 2
    assert count(led, "refuse", "e") == 1
    caught = entries(led, "caught")
    assert [e[2] for e in caught] == ["1", "2"]
    assert all(issubclass(getattr(djobs, e[3]), djobs.NoRetry) for e in caught)
    assert caught[0][4] == caught[1][4]  # the same message on replay
    assert "refused e" in json.loads(caught[1][4].replace("_", " "))
    assert count(led, "step", "e", "1") == 1
    cps = q.checkpoints(jid)
    assert cps[0].call_index == 0 and cps[0].name == "refuse"
    assert cps[0].error is not None and "refused e" in cps[0].error
    assert "refused e" in job.result


def test_noretry_inside_call_fails_the_job_at_once(q: djobs.Queue, led: Path) -> None:
    """An uncaught NoRetry from a call fails the job on its first attempt, whatever retries remain."""
    q.register("refusing-wf", lambda ctx, args: ctx.call("refuse", {"wf": "n"}), retries=5)
    jid = q.enqueue("refusing-wf", None)
    job = run_to_end(q, jid, "failed")
    assert job.attempt == 1
    assert "refused n" in (job.last_error or "")
    assert count(led, "refuse", "n") == 1


def test_determinism_violation_fails_at_once_naming_both(q: djobs.Queue, led: Path) -> None:
    jid = q.enqueue("nondeterministic", {"wf": "d"}, retries=5)
    job = run_to_end(q, jid, "failed")
    assert job.attempt == 2  # not retried again although 5 retries were allowed
    assert "'step'" in (job.last_error or "") or '"step"' in (job.last_error or "")
    assert "step-b" in (job.last_error or "")
    assert count(led, "step-b", "d") == 0  # the mismatching call never ran
    assert count(led, "step", "d", "0") == 1
    assert count(led, "nd-run", "d") == 2


def test_determinism_violation_between_a_call_and_a_fan_out(q: djobs.Queue, led: Path) -> None:
    jid = q.enqueue("nondeterministic", {"wf": "df", "fan": True}, retries=5)
    job = run_to_end(q, jid, "failed")
    assert job.attempt == 2
    assert "step" in (job.last_error or "") and "fan_out" in (job.last_error or "")
    assert q.sub_jobs(jid) == [] and count(led, "rec", "df") == 0


def test_nested_calls_replay_without_running(q: djobs.Queue, led: Path) -> None:
    jid = q.enqueue("nested", {"wf": "n"})
    job = run_to_end(q, jid)
    assert job.attempt == 2
    assert job.result == {"first": 1, "inner": [100, 121], "last": 4}
    assert count(led, "mid", "n") == 1
    assert [count(led, "step", "n", str(i)) for i in (1, 10, 11, 2)] == [1, 1, 1, 1]
    # Every call, inner ones included, has its checkpoint.
    cps = q.checkpoints(jid)
    assert sorted(c.name for c in cps) == ["mid", "step", "step", "step", "step"], cps
    assert [c.value for c in cps if c.name == "mid"] == [[100, 121]]
    assert sorted(c.value["n"] for c in cps if c.name == "step") == [1, 2, 10, 11]


def test_results_are_json_round_tripped_first_run_and_replay(q: djobs.Queue, led: Path) -> None:
    jid = q.enqueue("roundtrip", {"wf": "r"})
    job = run_to_end(q, jid)
    expected = {"tuple": [1, 2, 3], "intkeys": {"1": "one"}, "nested": [[4, 5]], "f": 1.5, "none": None}
    seen = entries(led, "seen")
    assert [e[2] for e in seen] == ["1", "2"]
    assert [json.loads(e[3]) for e in seen] == [expected, expected]
    assert count(led, "shapes", "r") == 1
    assert job.result == expected


def test_save_and_load_checkpoint_with_module_twins(q: djobs.Queue, led: Path) -> None:
    assert djobs.current_job() is None and djobs.current_job_id() is None  # outside any handler
    with pytest.raises(RuntimeError):
        djobs.save_checkpoint("x", 1)
    jid = q.enqueue("named", {"wf": "p"})
    job = run_to_end(q, jid)
    assert job.attempt == 2
    runs = entries(led, "named-run")
    assert [json.loads(e[3]) for e in runs] == [[None, False], [{"stage": 2, "items": [3, 4]}, True]]
    assert [json.loads(e[2]) for e in entries(led, "named-absent")] == [[None, False], [None, False]]
    seen = [json.loads(e[3]) for e in entries(led, "named-seen")]
    both = [["via-module", True], [{"stage": 2, "items": [3, 4]}, True]]
    assert seen == [both, both]
    assert job.result == {"phase": {"stage": 2, "items": [3, 4]}, "twin": "via-module"}
    cps = {c.name: c for c in q.checkpoints(jid)}
    assert set(cps) == {"phase", "twin"}
    assert cps["phase"].call_index is None and cps["phase"].value == {"stage": 2, "items": [3, 4]}


def test_checkpoint_saved_events(q: djobs.Queue, led: Path) -> None:
    sub = q.events(buffer=10_000)
    try:
        jid = q.enqueue("named", {"wf": "ev"})
        wid = q.enqueue("workflow", {"wf": "ev2", "steps": 3})
        w = in_process_worker(q)
        w.start()
        try:
            wait_status(q, jid, "completed")
            wait_status(q, wid, "completed")
        finally:
            w.stop(timeout=5)
        saved = []
        while (ev := sub.get(timeout=0.5)) is not None:
            if isinstance(ev, djobs.CheckpointSaved):
                saved.append(ev)
    finally:
        sub.close()
    mine = [(e.call_index, e.name) for e in saved if e.job_id == jid]
    assert mine == [(None, "phase"), (None, "phase"), (None, "twin")]
    assert [(e.call_index, e.name) for e in saved if e.job_id == wid] == [
        (0, "step"),
        (1, "step"),
        (2, "step"),
    ]
    assert all(e.timestamp is not None for e in saved)
    # The same events are in the database log, readable from any process.
    stored = [e for e in q.events_since(0, limit=1000, job_id=wid) if e.kind == "checkpoint_saved"]
    assert [(e.data.get("call_index"), e.data.get("name")) for e in stored] == [
        (0, "step"),
        (1, "step"),
        (2, "step"),
    ]


def test_async_handler_durable_calls(q: djobs.Queue, led: Path) -> None:
    @q.handler("async-wf", retries=3)
    async def async_wf(ctx: djobs.Context, args: dict) -> list:
        a = ctx.call("step", {"wf": "as", "n": 1})
        b = djobs.call("step", {"wf": "as", "n": 2})
        if ctx.job.attempt == 1:
            raise djobs.RetryAfter(0.05, "fail once")
        return [a["sq"], b["sq"]]

    jid = q.enqueue("async-wf", {})
    job = run_to_end(q, jid)
    assert job.result == [1, 4] and job.attempt == 2
    assert [count(led, "step", "as", n) for n in ("1", "2")] == [1, 1]


def test_an_async_step_called_from_an_async_handler_sees_its_job(q: djobs.Queue) -> None:
    """An async step run from inside a running loop runs on a helper thread: it must still see the job."""

    @q.handler("async-step")
    async def async_step(args: dict) -> str | None:
        job = djobs.current_job()
        return None if job is None else job.id

    @q.handler("async-parent")
    async def async_parent(ctx: djobs.Context, args: dict) -> list:
        return [ctx.call("async-step", {}), ctx.job.id]

    jid = q.enqueue("async-parent", {})
    job = run_to_end(q, jid)
    assert job.result == [jid, jid]

def test_checkpoints_kept_after_completion(q: djobs.Queue, led: Path) -> None:
    jid = q.enqueue("workflow", {"wf": "kept", "steps": 2})
    run_to_end(q, jid)
    assert [c.call_index for c in q.checkpoints(jid)] == [0, 1]
    assert q.checkpoints("no-such-job") == []


@pytest.mark.parametrize("reclaimer", ["same-worker", "other-worker"])
def test_stale_execution_is_cancelled_when_its_job_is_reclaimed(
    q: djobs.Queue, led: Path, reclaimer: str
) -> None:
    """A worker that looked silent (stalled past the stale age) had its running job reclaimed; the job is
    claimed again — by another worker, or by the same one once it is back. The stale execution must be
    cancelled and write nothing, whoever holds the new claim: only the new attempt's steps and outcome
    count. (Seen in the stress test under CPU load: the old attempt's RetryAfter overwrote the new
    attempt, and both ran the same steps.) The reaper's write is simulated with SQL."""
    jid = q.enqueue("workflow", {"wf": "sr", "steps": 3, "hang_at": 1, "gate": "sr"})
    w1 = in_process_worker(q)
    w1.start()
    w2 = None
    try:
        wait_until(lambda: count(led, "hang-start", "sr", "1") == 1, 30, "the first attempt to hang")
        if reclaimer == "other-worker":
            w1.pause(djobs.PauseMode.GRACEFUL)  # w1 keeps running the job but claims nothing more
            w2 = in_process_worker(q)
            w2.start()
        sql(
            q,
            "UPDATE djobs_jobs SET status = 'pending', locked_by = NULL, run_at = {now} WHERE id = ?",
            (jid,),
        )
        if q.storage.is_pg:  # and wakes idle workers, as the reaper does (one idle since then sleeps 30 s)
            sql(q, "SELECT pg_notify('djobs_wake', current_schema())")
        wait_until(lambda: count(led, "hang-start", "sr", "2") == 1, 30, "the job to be claimed again")
        wait_until(
            lambda: count(led, "cancelled", "sr", "1") == 1, 5, "the stale attempt's handler to be cancelled"
        )
        open_gate(led, "sr")
        job = wait_status(q, jid, "completed")
        assert job.attempt == 2
        kinds = [e.kind for e in q.events_since(0, 1000, job_id=jid)]
        assert "job_retrying" not in kinds and "job_failed" not in kinds, kinds
        assert count(led, "step", "sr", "2") == 1
        assert count(led, "hang-done", "sr") == 1
        assert [c.call_index for c in q.checkpoints(jid)] == [0, 1, 2]
    finally:
        open_gate(led, "ALL")
        for w in (w1, w2):
            if w is not None:
                w.stop(timeout=5)


def test_a_step_gets_and_returns_what_a_json_round_trip_gives(q: djobs.Queue) -> None:
    """Scalars pass straight through (a JSON round trip returns them unchanged); anything else is the
    decoded copy of what was stored; a scalar that does not fit the step's annotated type fails the call as
    any other value does."""
    seen: list[object] = []

    def echo(args: object) -> object:
        seen.append(args)
        return args

    def typed(n: int) -> int:
        return n + 1

    def flow(ctx: djobs.Context, args: object) -> object:
        out = [ctx.call("echo", v) for v in ("text", 7, True, None, 2**70, (1, 2), {"k": (3,)})]
        try:
            ctx.call("typed", "seven")
        except TypeError as exc:
            out.append(f"TypeError: {exc}")
        out.append(ctx.call("typed", 41))
        return out

    q.register("echo", echo)
    q.register("typed", typed)
    q.register("flow", flow)
    job = run_to_end(q, q.enqueue("flow", None))
    assert seen == ["text", 7, True, None, 2**70, [1, 2], {"k": [3]}]  # tuples arrive as JSON gives them back
    assert [type(v) for v in seen[:5]] == [str, int, bool, type(None), int]
    result = job.result
    assert result[:7] == ["text", 7, True, None, 2**70, [1, 2], {"k": [3]}]
    assert result[7].startswith("TypeError") and result[8] == 42
    assert [c.value for c in q.checkpoints(job.id)][:7] == result[:7]
