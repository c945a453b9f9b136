"""Durable signals on SQLite and PostgreSQL, with real worker processes and `kill -9`.

- Signals sent before the wait are kept and come back first in first out; each is consumed once.
- A received signal is returned again on replay; check_signal never waits.
- The timeout raises djobs.SignalTimeout (a TimeoutError); uncaught, it fails the job without retries.
- A signal sent while the waiter's worker is dead (the job waiting, or running when the worker died) is
  delivered after recovery, the steps before the wait not re-run.
- Random kills while signals are sent: none lost, none delivered twice, all in order.
- queue.signal: JobNotFound, ValueError for a finished job or a bad name or payload, nothing written.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from core_support import running
from durable_handlers import WorkerProcs, count, entries, sql, wait_status, wait_until

import djobs
from djobs.explain import why

pytestmark = pytest.mark.timeout(180)


def n_signals(q: djobs.Queue, consumed: bool | None = None) -> int:
    where = "" if consumed is None else " WHERE consumed_by IS NOT NULL" if consumed else " WHERE consumed_by IS NULL"
    return int(sql(q, "SELECT COUNT(*) FROM djobs_signals" + where)[0][0])


def test_signals_sent_before_the_wait_come_back_in_order(q: djobs.Queue, led: Path) -> None:
    job_id = q.enqueue("waiter", {"tag": "o", "names": ["a", "b", "a"]})
    q.signal(job_id, "a", {"n": 1})
    q.signal(job_id, "b", "only-b")
    q.signal(job_id, "a", {"n": 2})
    q.signal(job_id, "a", {"n": 3})
    with running(q):
        job = wait_status(q, job_id, "completed", timeout=30)
    assert job.result == [{"n": 1}, "only-b", {"n": 2}]
    assert q.pending_signals(job_id, "a") == 1 and q.pending_signals(job_id) == 1
    kinds = [e.kind for e in q.events_since(0, limit=1000, job_id=job_id)]
    assert kinds.count("signal_sent") == 4 and kinds.count("signal_received") == 3
    assert "job_waiting_signal" not in kinds  # every signal was already there


def test_waiting_job_wakes_on_its_signal_and_replays_it(q: djobs.Queue, led: Path) -> None:
    job_id = q.enqueue("waiter", {"tag": "r", "names": ["go"], "fail_after": True, "twin": True})
    with running(q):
        wait_status(q, job_id, "waiting", timeout=30)
        job = q.get_job(job_id)
        assert job is not None and (job.wait_kind, job.wait_signal) == ("signal", "go")
        assert why(q, job_id)[0] == "the job is waiting for signal 'go' (sent: 0)"
        q.signal(job_id, "other", 0)  # another name does not wake it
        time.sleep(0.5)
        assert q.get_job(job_id).status.value == "waiting"  # type: ignore[union-attr]
        q.signal(job_id, "go", {"by": "ann"})
        job = wait_status(q, job_id, "completed", timeout=30)
    # Attempt 1 received it and failed; attempt 2 replayed the same payload without a new signal.
    assert job.attempt == 2 and job.result == [{"by": "ann"}]
    assert [e[3] for e in entries(led, "got")] == ['{"by":"ann"}', '{"by":"ann"}']
    assert n_signals(q, consumed=True) == 1 and q.pending_signals(job_id, "other") == 1
    assert count(led, "step", "r", "0") == 1


def test_check_signal_never_waits(q: djobs.Queue, led: Path) -> None:
    empty = q.enqueue("checker", {"tag": "e", "names": ["x"]})
    with running(q):
        job = wait_status(q, empty, "completed", timeout=30)
        assert job.result == [[None, False]]
        assert "job_waiting_signal" not in [e.kind for e in q.events_since(0, limit=100, job_id=empty)]
        full = q.enqueue("checker", {"tag": "f", "names": ["x", "x", "x"], "twin": True}, delay=0.5)
        q.signal(full, "x", 1)
        q.signal(full, "x", None)
        job = wait_status(q, full, "completed", timeout=30)
    assert job.result == [[1, True], [None, True], [None, False]]


def test_timeout_raises_signal_timeout(q: djobs.Queue, led: Path) -> None:
    caught = q.enqueue("waiter", {"tag": "c", "names": ["never"], "timeout": 0.5, "catch": True})
    uncaught = q.enqueue("waiter", {"tag": "u", "names": ["never"], "timeout": 0.5})
    with running(q):
        assert wait_status(q, caught, "completed", timeout=30).result == ["timeout"]
        job = wait_status(q, uncaught, "failed", timeout=30)
        # A timeout is checkpointed: a signal sent now is not taken by the finished wait.
        assert job.attempt == 1 and "SignalTimeout" in (job.last_error or "")
    assert sorted(e[1] for e in entries(led, "timed-out")) == ["c", "u"]
    assert all(e[3] == "True" for e in entries(led, "timed-out"))  # a TimeoutError
    assert issubclass(djobs.SignalTimeout, TimeoutError)


def test_signal_beats_its_timeout_across_a_kill(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    """The deadline stored by the first wait holds across restarts; a signal before it is received."""
    job_id = q.enqueue("waiter", {"tag": "k", "names": ["go"], "timeout": 60})
    first = procs.start("default=2")
    wait_status(q, job_id, "waiting", timeout=30)
    procs.kill9(first)
    q.signal(job_id, "go", "in time")
    procs.start("default=2")
    assert wait_status(q, job_id, "completed", timeout=60).result == ["in time"]
    assert count(led, "step", "k", "0") == 1


def test_signal_sent_while_the_waiters_worker_is_dead(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    """The worker dies while the job runs a step before the wait; the signal sent then is kept and, once
    another worker recovers the job, the replayed wait receives it."""
    job_id = q.enqueue("waiter", {"tag": "d", "names": ["go"], "hang_gate": "g"})
    first = procs.start("default=2", stale=1.0)
    wait_until(lambda: entries(led, "hang-start"), 30, "the step before the wait to start")
    procs.kill9(first)
    q.signal(job_id, "go", {"after": "crash"})
    assert q.get_job(job_id).status.value == "running"  # type: ignore[union-attr]
    Path(led, "gate-g").touch()
    procs.start("default=2", stale=1.0)
    assert wait_status(q, job_id, "completed", timeout=60).result == [{"after": "crash"}]
    assert count(led, "step", "d", "0") == 1
    assert n_signals(q, consumed=True) == 1 and n_signals(q) == 1


def test_random_kills_lose_and_duplicate_no_signal(q: djobs.Queue, led: Path, procs: WorkerProcs) -> None:
    rng = random.Random(7)
    jobs = {q.enqueue("waiter", {"tag": f"w{i}", "names": ["s"] * 4}): f"w{i}" for i in range(8)}
    proc = procs.start("default=4")
    sent: dict[str, list[int]] = {j: [] for j in jobs}
    for k in range(4):
        for job_id in jobs:
            sent[job_id].append(k)
            q.signal(job_id, "s", k)
            time.sleep(rng.uniform(0, 0.01))
        if k % 2 == 0:
            procs.kill9(proc)
            time.sleep(rng.uniform(0, 0.3))
            proc = procs.start("default=4")
    for job_id in jobs:
        assert wait_status(q, job_id, "completed", timeout=90).result == sent[job_id]
    assert n_signals(q, consumed=False) == 0 and n_signals(q, consumed=True) == 32
    rows = sql(q, "SELECT job_id, consumed_by, COUNT(*) FROM djobs_signals GROUP BY job_id, consumed_by")
    assert all(r[2] == 1 for r in rows), rows  # one signal per wait step


def test_signal_to_unknown_or_finished_jobs(q: djobs.Queue, led: Path) -> None:
    with pytest.raises(djobs.JobNotFound):
        q.signal("no-such-job", "go")
    job_id = q.enqueue("checker", {"tag": "x", "names": []})
    with running(q):
        wait_status(q, job_id, "completed", timeout=30)
    with pytest.raises(ValueError, match="completed"):
        q.signal(job_id, "go", 1)
    cancelled = q.enqueue("rec", {"tag": "c"}, delay=3600)
    q.cancel_job(cancelled)
    with pytest.raises(ValueError, match="cancelled"):
        q.signal(cancelled, "go")
    assert n_signals(q) == 0


DEEP: list = []
for _ in range(120):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    ("name", "payload", "error"),
    [
        ("", None, ValueError),
        ("x" * 256, None, ValueError),
        ("a\nb", None, ValueError),
        (5, None, TypeError),
        ("ok", {"blob": "x" * 1_000_001}, ValueError),
        ("ok", object(), TypeError),
        ("ok", DEEP, ValueError),
    ],
)
def test_invalid_signals_write_nothing(q: djobs.Queue, name: object, payload: object, error: type) -> None:
    job_id = q.enqueue("rec", {"tag": "v"}, delay=3600)
    with pytest.raises(error):
        q.signal(job_id, name, payload)  # type: ignore[arg-type]
    assert n_signals(q) == 0
    assert not [e for e in q.events_since(0, limit=100, job_id=job_id) if e.kind == "signal_sent"]


@pytest.mark.parametrize("kind", ["bad-name", "bad-timeout"])
def test_invalid_waits_fail_the_job(q: djobs.Queue, kind: str) -> None:
    job_id = q.enqueue("bad-wait", {"kind": kind})
    with running(q):
        job = wait_status(q, job_id, "failed", timeout=30)
    assert "ValueError" in (job.last_error or ""), job.last_error
    assert q.checkpoints(job_id) == []


def test_paused_waiter_keeps_its_signal_until_resumed(q: djobs.Queue, led: Path) -> None:
    job_id = q.enqueue("waiter", {"tag": "p", "names": ["go"]})
    with running(q):
        wait_status(q, job_id, "waiting", timeout=30)
        q.pause_job(job_id)
        q.signal(job_id, "go", "while paused")
        time.sleep(0.5)
        assert q.get_job(job_id).status.value == "paused"  # type: ignore[union-attr]
        q.resume_job(job_id)
        assert wait_status(q, job_id, "completed", timeout=30).result == ["while paused"]


# -- the storage operations, guarded by ownership ------------------------------------------------------------
def test_signal_storage_operations_are_guarded(store: djobs.PeeweeStorage) -> None:
    from djobs.jobs import NewJob, Owner, new_id
    from djobs.outcomes import ClaimRequest

    job = NewJob(new_id(), "t", "default", "null", 0, 3)
    store.insert_jobs([job])
    (c,) = store.cycle("w1", [], [ClaimRequest("default", ("t",), 1)]).claims
    me, other = Owner(job.id, "w1", c.job.attempt), Owner(job.id, "w2", c.job.attempt)
    for op, args in (
        (store.take_signal, ("default", "c:0", 0, "wait_for_signal", "go", True, None, None)),
        (store.sleep_step, ("default", "c:0", 0, 5.0, None)),
    ):
        with pytest.raises(djobs.errors.OwnershipLost):
            op(other, *args)
    assert store.load_checkpoints(job.id) == {}
    assert store.send_signal(job.id, "go", '"early"') is False  # running: kept, nothing to wake
    assert store.take_signal(me, "default", "c:0", 0, "wait_for_signal", "go", True, None, None) == (
        "received", '{"signal":"go","payload":"early"}',
    )  # fmt: skip
    state, value = store.take_signal(me, "default", "c:1", 1, "wait_for_signal", "go", True, None, None)
    assert (state, store.get_job(job.id).wait_signal) == ("waiting", "go")  # type: ignore[union-attr]
    assert store.send_signal(job.id, "go", "2") is True  # wakes the waiting job
    assert store.get_job(job.id).run_at is not None  # type: ignore[union-attr]


# -- the command line ------------------------------------------------------------------------------------------
def djobs_cli(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("djobs")
    return subprocess.run(
        [str(exe), "--database", db_url, *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_cli_signal(q: djobs.Queue, db_url: str, led: Path, tmp_path: Path) -> None:
    job_id = q.enqueue("waiter", {"tag": "cli", "names": ["go", "go", "go", "go"]})
    Path(tmp_path, "payload.json").write_text('{"from": "file"}')
    with running(q):
        wait_status(q, job_id, "waiting", timeout=30)
        assert "waits for  signal 'go'" in djobs_cli(db_url, "inspect", job_id, "--wide").stdout
        out = djobs_cli(db_url, "signal", job_id, "go", "--payload", '{"by": "ann"}')
        assert (out.returncode, out.stdout, out.stderr) == (0, f"sent signal 'go' to {job_id}\n", "")
        assert djobs_cli(db_url, "signal", job_id, "go", "--payload", f"@{tmp_path}/payload.json").returncode == 0
        assert djobs_cli(db_url, "signal", job_id, "go", "--payload", "-", stdin="[1, 2]").returncode == 0
        out = djobs_cli(db_url, "signal", job_id, "go", "--json")
        assert out.returncode == 0 and json.loads(out.stdout) == {"id": job_id, "signal": "go", "sent": True}
        job = wait_status(q, job_id, "completed", timeout=30)
    assert job.result == [{"by": "ann"}, {"from": "file"}, [1, 2], None]
    # An unknown job: exit 1; a finished one, bad JSON, a bad name: exit 2; one line each, nothing sent.
    for args, code in (
        (("signal", "no-such-job", "go"), 1),
        (("signal", job_id, "go"), 2),
        (("signal", job_id, "go", "--payload", "{bad"), 2),
        (("signal", job_id, "a\tb"), 2),
    ):
        out = djobs_cli(db_url, *args)
        assert out.returncode == code, (args, out.stderr)
        assert out.stdout == "" and out.stderr.startswith("djobs: ") and out.stderr.count("\n") == 1, out.stderr
    assert n_signals(q) == 4
