"""Fan-out and durable steps across real worker processes, on SQLite and PostgreSQL.

- SuspendForFanOut_CommitsAtomically: `kill -9` of the worker around the fan-out write leaves either no
  sub-jobs (parent still running, later reclaimed) or all of them (parent waiting) — never a part. On
  PostgreSQL one kill lands deterministically inside the transaction (a table lock holds it half-written).
- A parent waiting on 100 sub-jobs spread over 3 worker processes completes; every sub-job ran once.
- Stress_WorkflowsWithCheckpoints: 200 workflows x 5 steps under 2 worker processes, each failing once
  after some step; every step's side effect happens exactly once.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from durable_handlers import (
    WorkerProcs,
    counts,
    entries,
    open_gate,
    register,
    sql,
    wait_status,
    wait_until,
)

import djobs

pytestmark = pytest.mark.timeout(240)


def rec(tag: str, **kw: Any) -> dict[str, Any]:
    return {"type": "rec", "args": {"tag": tag, **kw}}


def fan_state(q: djobs.Queue, pid: str, prefix: str, n: int) -> str:
    """'before' (nothing of the fan-out written) or 'after' (all of it); AssertionError for anything else."""
    parent = q.get_job(pid)
    assert parent is not None
    subs = q.sub_jobs(pid)
    fanouts = sql(q, "SELECT COUNT(*) FROM djobs_fanouts WHERE parent_id = ?", (pid,))[0][0]
    cps = [c.name for c in q.checkpoints(pid)]
    state = (parent.status.value, len(subs), int(fanouts), cps)
    if not subs:
        assert state[2:] == (0, []), f"partial fan-out write: {state}"
        assert parent.status.value in ("running", "pending"), f"no sub-jobs but the parent is {state}"
        return "before"
    assert state == ("waiting", n, 1, ["fan_out"]), f"partial fan-out write: {state}"
    assert sorted(s.args["tag"] for s in subs) == sorted(f"{prefix}-{i}" for i in range(n))
    return "after"


N_SUBS = 200
DELAYS = [0.0, 0.005, 0.02, 0.05, 0.12]


def test_suspend_for_fanout_commits_atomically_under_kill9(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    rng = random.Random(1234)
    parents: list[str] = []
    seen: Counter[str] = Counter()
    iterations = 6
    for i in range(iterations):
        qname = f"atomic{i}"
        subs = [rec(f"{qname}-{j}") for j in range(N_SUBS)]
        pid = q.enqueue("fan", {"tag": qname, "subs": subs, "queue": "held"}, queue=qname)
        parents.append(pid)
        proc = procs.start(f"{qname}=1")
        wait_until(
            lambda qn=qname: any(e[1] == qn for e in entries(led, "fan-write")),
            60,  # type: ignore[misc]
            f"{qname}'s parent to reach its fan-out",
        )
        if i == iterations - 1:  # the last kill lands once the fan-out is committed
            wait_until(lambda p=pid: q.sub_jobs(p), 30, "the fan-out to be written")  # type: ignore[misc]
        else:  # the others at spread-out moments around the write
            time.sleep(DELAYS[i] * rng.uniform(0.5, 1.5))
        procs.kill9(proc)
        seen[fan_state(q, pid, qname, N_SUBS)] += 1
    # Settled (no half-finished transaction can commit any more): still all or nothing.
    for i, pid in enumerate(parents):
        fan_state(q, pid, f"atomic{i}", N_SUBS)
    # Recovery: one worker reclaims the parents left running and runs every sub-job exactly once.
    final = procs.start(",".join(f"atomic{i}=2" for i in range(iterations)) + ",held=8")
    procs.wait_registered(q, final)
    for i, pid in enumerate(parents):
        job = wait_status(q, pid, "completed", timeout=90)
        assert job.result["ok"] == N_SUBS and job.result["all"] is True
        assert job.result["values"] == [f"atomic{i}-{j}" for j in range(N_SUBS)]
    runs = counts(led, "rec")
    assert len(runs) == iterations * N_SUBS
    assert set(runs.values()) == {1}, [k for k, v in runs.items() if v != 1][:5]
    print(f"kill outcomes: {dict(seen)}")
    assert seen["after"] >= 1


def test_suspend_for_fanout_killed_inside_the_transaction(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL: a lock on djobs_checkpoints holds the fan-out transaction after the parent's switch to
    `waiting` and the fan-out row are written; kill -9 then. The transaction never commits: no sub-jobs,
    the parent is still running and is reclaimed, and its rerun fans out completely."""
    import psycopg

    led = tmp_path / "ledger"
    led.mkdir()
    store = djobs.connect(pg_url)
    q = djobs.Queue(store)
    register(q, led)
    procs = WorkerProcs(pg_url, led, queue=q)
    locker = psycopg.connect(store.conninfo)  # type: ignore[arg-type]
    # pg_stat_activity is snapshotted per transaction: watch it from an autocommit connection.
    monitor = psycopg.connect(store.conninfo, autocommit=True)  # type: ignore[arg-type]
    try:
        proc = procs.start("default=2,held=4")
        procs.wait_registered(q, proc)
        locker.execute("LOCK TABLE djobs_checkpoints IN EXCLUSIVE MODE")  # held until commit
        pid = q.enqueue(
            "fan", {"tag": "inside", "subs": [rec(f"in-{j}") for j in range(20)], "queue": "held"}
        )

        def blocked() -> int | None:
            rows = monitor.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'relation' "
                "AND query ILIKE 'INSERT INTO djobs_checkpoints%'"
            ).fetchall()
            return rows[0][0] if rows else None

        backend = wait_until(blocked, 60, "the fan-out transaction to block on the checkpoint insert")
        # Inside the transaction now: nothing of it is visible.
        assert q.get_job(pid).status.value == "running"  # type: ignore[union-attr]
        assert q.sub_jobs(pid) == []
        procs.kill9(proc)
        locker.commit()  # release: the orphaned backend finds its client gone and rolls back

        def backend_gone() -> bool:
            return not monitor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchall()

        wait_until(backend_gone, 60, "the killed worker's backend to end")
        assert fan_state(q, pid, "in", 20) == "before"
        assert q.get_job(pid).locked_by is not None  # type: ignore[union-attr]  # still claimed by the dead worker
        second = procs.start("default=2,held=4")
        procs.wait_registered(q, second)
        job = wait_status(q, pid, "completed", timeout=60)
        assert job.result["values"] == [f"in-{j}" for j in range(20)]
        assert job.attempt == 2  # the kill cost one attempt
        assert set(counts(led, "rec").values()) == {1} and len(counts(led, "rec")) == 20
    finally:
        locker.close()
        monitor.close()
        procs.close()
        store.close()


def test_parent_waiting_on_100_sub_jobs_over_3_worker_processes(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    ps = [procs.start("default=4") for _ in range(3)]
    for p in ps:
        procs.wait_registered(q, p)
    subs = [rec(f"h{i}", value=i, sleep=0.02) for i in range(100)]
    pid = q.enqueue("fan", {"tag": "hundred", "subs": subs})
    job = wait_status(q, pid, "completed", timeout=120)
    assert job.result["values"] == list(range(100))
    runs = counts(led, "rec")
    assert runs == Counter({(f"h{i}",): 1 for i in range(100)})
    pids = Counter(e[3] for e in entries(led, "rec"))
    assert set(pids) <= {str(p.pid) for p in ps}
    assert len(pids) >= 2, f"all sub-jobs ran in one process: {pids}"
    assert job.attempt == 1
    assert Counter(e[1] for e in entries(led, "fan-run")) == Counter({"hundred": 2})


def test_stress_workflows_with_checkpoints(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    n_wf, n_steps = 200, 5
    # No kills here, so a long stale age: a CPU-starved (not dead) worker must not be reclaimed mid-step.
    ps = [procs.start("default=6", stale=10.0) for _ in range(2)]
    for p in ps:
        procs.wait_registered(q, p)
    ids = q.enqueue_many(
        [
            djobs.Sub("workflow", {"wf": f"s{i}", "steps": n_steps, "fail_after": i % (n_steps + 1)})
            for i in range(n_wf)
        ]
    )
    deadline = time.monotonic() + 120
    for i, jid in enumerate(ids):
        job = wait_status(q, jid, "completed", timeout=max(1.0, deadline - time.monotonic()))
        assert job.result == [{"wf": f"s{i}", "n": n, "sq": n * n} for n in range(n_steps)]
        expected = 1 if i % (n_steps + 1) == n_steps else 2
        if job.attempt != expected:
            history = [(e.kind, e.worker_id, e.data) for e in q.events_since(0, 10_000, job_id=jid)]
            runs = [e for e in entries(led, "wf-run") if e[1] == f"s{i}"]
            raise AssertionError(f"s{i} took {job.attempt} attempts, expected {expected}: {history} {runs}")
    steps = counts(led, "step", width=2)
    assert len(steps) == n_wf * n_steps
    dupes = {k: v for k, v in steps.items() if v != 1}
    assert not dupes, f"steps that ran more than once: {list(dupes.items())[:10]}"
    assert len({e[4] for e in entries(led, "step")}) >= 1


def test_fanout_survives_kill9_of_a_worker_running_its_sub_jobs(
    q: djobs.Queue, led: Path, procs: WorkerProcs
) -> None:
    """Sub-jobs running on a worker that is killed -9 are reclaimed by the surviving worker; the parent
    completes with every result, and every sub-job completes exactly once."""
    a = procs.start("default=4")
    pid = q.enqueue("fan", {"tag": "kf", "subs": [rec(f"kf{i}", value=i, gate="kf") for i in range(8)]})
    wait_until(lambda: len(entries(led, "rec")) >= 4, 60, "worker A to run sub-jobs")
    b = procs.start("default=8")
    procs.kill9(a)
    on_a = {e[1] for e in entries(led, "rec") if e[3] == str(a.pid)}
    assert on_a
    open_gate(led, "kf")
    job = wait_status(q, pid, "completed", timeout=60)
    assert job.result["values"] == list(range(8))
    done = counts(led, "rec-done")
    assert done == Counter({(f"kf{i}",): 1 for i in range(8)})
    assert {e[3] for e in entries(led, "rec-done")} == {str(b.pid)}
    for kid in q.sub_jobs(pid):
        # Started on A: reclaimed, attempt spent. Others may have been claimed (prefetched) by A too.
        assert kid.attempt == 2 if kid.args["tag"] in on_a else kid.attempt in (1, 2), kid
