"""Nothing a handler does wedges a worker, on SQLite and PostgreSQL, with real worker processes.

A handler that hangs (sync, async, or async swallowing its cancellation) gives its slot back at its time
limit and its attempt is recorded as `djobs.JobTimeout`; anything a handler raises — database errors of its
own, `StorageUnavailable`, `JobCancelled`, `asyncio.CancelledError`, a `RetryAfter` with an impossible
delay — is that job's failure, its attempts counted; a result that cannot be stored fails the job once; a
job given back more than `MAX_REFUNDS` times in a row fails; a cancelled hung job frees its slot; fan-out
deadlines fire at their due time even with the rescuer switched off. Run counts are read from the
database (the job's attempt and its `job_started` events), never inferred from timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_handlers import Ledger
from core_support import Procs, procs_for, running, wait_until
from dbsql import sql
from wedge_handlers import register

import djobs
from djobs.outcomes import MAX_REFUNDS

pytestmark = pytest.mark.timeout(180)

#: A job may stay `running` this long past its time limit (the deadline is enforced in process; this is the
#: slack for a loaded machine, far below any "forever").
SLACK = 10.0


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    yield from procs_for(tmp_path)


@pytest.fixture
def wq(queue: djobs.Queue, tmp_path: Path) -> djobs.Queue:
    register(queue, Ledger(tmp_path / "unused.jsonl"))
    return queue


def start_worker(procs: Procs, db_url: str, ledger: Path, *extra: str, slots: int = 1) -> str:
    w = procs.start(db_url, ledger, "--handlers", "wedge_handlers", "--queues", f'{{"default": {slots}}}', *extra)
    return w.worker_id()


def finished(q: djobs.Queue, ids: list[str], procs: Procs, timeout: float = 90.0) -> dict[str, djobs.Job]:
    """Wait until every job is finished; fail naming the unfinished ones and the workers' logs."""

    def done() -> dict[str, djobs.Job] | None:
        jobs = {i: q.get_job(i) for i in ids}
        return jobs if all(j is not None and j.status in djobs.jobs.TERMINAL for j in jobs.values()) else None  # type: ignore[misc]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = done()
        if jobs is not None:
            return jobs
        time.sleep(0.1)
    states = {i: (j.type, j.status.value, j.attempt) for i in ids if (j := q.get_job(i)) is not None}
    pytest.fail(f"jobs not finished after {timeout:.0f}s: {states}\n{procs.logs()}")


def starts(q: djobs.Queue, job_id: str) -> int:
    """How many times the job was started, from the event log the workers wrote."""
    return len([e for e in q.events_since(0, limit=10_000, job_id=job_id) if e.kind == "job_started"])


def overdue_running(q: djobs.Queue, limit: float) -> list[tuple[str, float]]:
    """Running jobs whose attempt started more than `limit` + SLACK seconds ago (by the database clock)."""
    rows = sql(q.storage, "SELECT id, {now} - started_at FROM djobs_jobs WHERE status = 'running'").fetchall()
    return [(r[0], float(r[1])) for r in rows if r[1] is not None and float(r[1]) > limit + SLACK]


# -- time limits ----------------------------------------------------------------------------------------------
def test_hung_handlers_free_their_one_slot_at_the_deadline(
    wq: djobs.Queue, db_url: str, procs: Procs, tmp_path: Path
) -> None:
    """One slot serves a sync handler that ignores cancellation, an async one, and an async one that swallows
    every cancellation — each twice (retries=1) — and then an ordinary job: every attempt ends at its 1 s
    limit as JobTimeout, no job stays running past it, and the slot is free for the next."""
    ledger = tmp_path / "ledger.jsonl"
    start_worker(procs, db_url, ledger)
    hung = [wq.enqueue(t, None, timeout=1) for t in ("hang", "ahang", "stubborn")]
    ok = wq.enqueue("ok", None, priority=-1)  # claimed last: only a freed slot can run it
    ids = [*hung, ok]

    def all_done() -> bool:
        assert not overdue_running(wq, 1.0), f"a job stayed running past its time limit\n{procs.logs()}"
        return all((j := wq.get_job(i)) is not None and j.status in djobs.jobs.TERMINAL for i in ids)

    wait_until(all_done, 120, "the hung jobs to time out and the ordinary one to run")
    jobs = finished(wq, ids, procs)
    for job_id in hung:
        job = jobs[job_id]
        assert job.status is djobs.JobStatus.FAILED, (job.type, job.status, job.last_error)
        assert job.attempt == 2 and starts(wq, job_id) == 2, (job.type, job.attempt, starts(wq, job_id))
        assert job.last_error is not None and job.last_error.startswith("JobTimeout"), job.last_error
        assert "time limit of 1s" in job.last_error
        assert job.last_traceback and "JobTimeout" in job.last_traceback
    assert jobs[ok].status is djobs.JobStatus.COMPLETED
    swallowed = Ledger(ledger).records("swallowed")
    assert swallowed, "the stubborn handler was never cancelled"
    assert {r["job"] for r in Ledger(ledger).records("cancelled")} == {hung[1]}


def test_the_job_limit_beats_the_handler_limit_which_beats_the_worker_default(queue: djobs.Queue) -> None:
    slept: list[str] = []

    def nap(ctx: djobs.Context, args: Any) -> None:
        slept.append(ctx.job_id)
        ctx.wait_cancelled(600)

    queue.register("nap", nap, retries=0, timeout=0.5)
    by_handler = queue.enqueue("nap", None)
    by_job = queue.enqueue("nap", None, timeout=0.2)
    with running(queue, default_timeout=600):
        wait_until(lambda: all(queue.get_job(i).status.value == "failed" for i in (by_handler, by_job)), 60,  # type: ignore[union-attr]
                   "both naps to time out")  # fmt: skip
    assert "time limit of 0.5s" in (queue.get_job(by_handler).last_error or "")  # type: ignore[union-attr]
    assert "time limit of 0.2s" in (queue.get_job(by_job).last_error or "")  # type: ignore[union-attr]
    assert queue.get_job(by_job).timeout == 0.2  # type: ignore[union-attr]


def test_a_worker_default_limit_applies_to_jobs_and_types_without_one(
    wq: djobs.Queue, db_url: str, procs: Procs, tmp_path: Path
) -> None:
    start_worker(procs, db_url, tmp_path / "ledger.jsonl", "--default-timeout", "1")
    hung = wq.enqueue("hang", None, retries=0)
    ok = wq.enqueue("ok", None, priority=-1)
    jobs = finished(wq, [hung, ok], procs)
    assert jobs[hung].status is djobs.JobStatus.FAILED and "time limit of 1s" in (jobs[hung].last_error or "")
    assert jobs[ok].status is djobs.JobStatus.COMPLETED


def test_cancelling_a_running_hung_job_frees_its_slot(
    wq: djobs.Queue, db_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    start_worker(procs, db_url, ledger)
    hung = wq.enqueue("hang", None)  # no time limit: only the cancel ends it
    wait_until(lambda: Ledger(ledger).records("start", job=hung), 60, "the hung job to start")
    ok = wq.enqueue("ok", None)
    assert wq.cancel_job(hung)
    jobs = finished(wq, [hung, ok], procs)
    assert jobs[hung].status is djobs.JobStatus.CANCELLED and jobs[hung].attempt == 1
    assert jobs[ok].status is djobs.JobStatus.COMPLETED


# -- errors a handler raises ------------------------------------------------------------------------------------
KINDS = ("operational", "interface", "storage", "job_cancelled", "asyncio_cancelled")
ERROR_NAMES = {
    "operational": "OperationalError", "interface": "InterfaceError", "storage": "StorageUnavailable",
    "job_cancelled": "JobCancelled", "asyncio_cancelled": "CancelledError",
}  # fmt: skip


def test_misbehaving_handlers_fail_their_own_job_and_the_worker_keeps_serving(
    wq: djobs.Queue, db_url: str, procs: Procs, tmp_path: Path
) -> None:
    """Machinery-looking errors raised by handler code are the job's failures (3 runs with retries=2, no
    refunds); RetryAfter with inf/nan/negative delays and unstorable results fail at once with a clear
    message; durable step and sub-job failures name the step and sub-job; the worker serves on."""
    start_worker(procs, db_url, tmp_path / "ledger.jsonl", slots=4)
    raisers = {(t, k): wq.enqueue(t, {"kind": k}) for t in ("raiser", "araiser") for k in KINDS}
    retry_afters = {d: wq.enqueue("retry_after", {"delay": d}) for d in ("inf", "nan", "-1", "1e300")}
    deep = wq.enqueue("deep", {"depth": 5000})
    step = wq.enqueue("step_fails", None)
    fan = wq.enqueue("fan_fails", None)
    ids = [*raisers.values(), *retry_afters.values(), deep, step, fan]
    jobs = finished(wq, ids, procs)

    for (_, kind), job_id in raisers.items():
        job = jobs[job_id]
        assert job.status is djobs.JobStatus.FAILED, (kind, job.status)
        assert (job.attempt, job.refunds, starts(wq, job_id)) == (3, 0, 3), (job.type, kind)
        assert job.last_error is not None and job.last_error.startswith(ERROR_NAMES[kind]), job.last_error
        assert job.last_traceback and ERROR_NAMES[kind] in job.last_traceback
    for delay, job_id in retry_afters.items():
        job = jobs[job_id]
        assert job.status is djobs.JobStatus.FAILED and (job.attempt, starts(wq, job_id)) == (1, 1), delay
        assert job.last_error is not None and "RetryAfter" in job.last_error, job.last_error
    assert "finite" in (jobs[retry_afters["inf"]].last_error or "")
    assert "finite" in (jobs[retry_afters["nan"]].last_error or "")
    assert ">= 0" in (jobs[retry_afters["-1"]].last_error or "")
    assert "too long" in (jobs[retry_afters["1e300"]].last_error or "")
    job = jobs[deep]
    assert job.status is djobs.JobStatus.FAILED and (job.attempt, starts(wq, deep)) == (1, 1)
    assert job.last_error == "the result cannot be stored: it must nest at most 100 deep"

    step_error = jobs[step].last_error or ""
    assert "kaput" in step_error and "in durable step 'boom'" in step_error, step_error
    fan_error = jobs[fan].last_error or ""
    (boom_sub,) = [s for s in wq.sub_jobs(fan) if s.type == "boom"]
    assert f"sub-job {boom_sub.id} failed" in fan_error and "kaput" in fan_error, fan_error

    after = wq.enqueue("ok", None)
    assert finished(wq, [after], procs)[after].status is djobs.JobStatus.COMPLETED
    assert all(w.alive() for w in procs.started)
    assert {j.attempt for j in (wq.get_job(i) for i in ids) if j is not None} <= {1, 3}, "a finished job ran again"


def test_a_job_given_back_more_than_max_refunds_times_in_a_row_fails(
    wq: djobs.Queue, db_url: str, procs: Procs, tmp_path: Path
) -> None:
    """Aggressive pauses of its worker give a running job back, attempt refunded; the 11th in a row fails it."""
    ledger = tmp_path / "ledger.jsonl"
    worker_id = start_worker(procs, db_url, ledger)
    job_id = wq.enqueue("ahang", None)
    for n in range(1, MAX_REFUNDS + 2):
        wait_until(lambda n=n: len(Ledger(ledger).records("start", job=job_id)) >= n, 60, f"start #{n}")
        assert wq.pause_worker(worker_id, djobs.PauseMode.AGGRESSIVE)
        wait_until(lambda: (j := wq.get_job(job_id)) is not None and j.status.value != "running", 60, "the release")
        assert wq.resume_worker(worker_id)
    job = finished(wq, [job_id], procs)[job_id]
    assert job.status is djobs.JobStatus.FAILED, (job.status, job.refunds, job.last_error)
    assert job.last_error is not None and "given back 11 times in a row" in job.last_error
    assert len(Ledger(ledger).records("start", job=job_id)) == MAX_REFUNDS + 1


# -- fan-out deadlines -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stale_interval", ["0", "30"])
def test_fan_out_deadlines_fire_at_their_due_time_whatever_the_rescuer_interval(
    wq: djobs.Queue, db_url: str, procs: Procs, tmp_path: Path, stale_interval: str
) -> None:
    """`timeout=1` decides about 1 s after the fan-out was written, not at a rescuer tick: with the rescuer
    every 30 s, or switched off (0)."""
    ledger = tmp_path / "ledger.jsonl"
    start_worker(procs, db_url, ledger, "--stale-interval", stale_interval, slots=2)
    parent = wq.enqueue("fan_hangs", {"timeout": 1})
    job = finished(wq, [parent], procs, timeout=60)[parent]
    subs = wq.sub_jobs(parent)
    facts = f"parent {job.status.value}: {job.last_error}; subs {[(s.status.value, s.last_error) for s in subs]}"
    assert job.status is djobs.JobStatus.FAILED and "fan-out" in (job.last_error or ""), f"{facts}\n{procs.logs()}"
    (sub,) = subs
    assert sub.status is djobs.JobStatus.CANCELLED, facts
    written = Ledger(ledger).records("fan", job=parent)[0]  # its first run wrote the fan-out (then it replays)
    decided = sql(wq.storage, "SELECT completed_at FROM djobs_jobs WHERE id = ?", (sub.id,)).fetchone()[0]
    late = decided - written["t"]
    assert late < 1.0 + SLACK / 2, f"the deadline fired {late:.1f}s after the fan-out; {facts}\n{procs.logs()}"


# -- failures a user can act on ----------------------------------------------------------------------------------
def test_every_failed_attempt_keeps_its_traceback_and_inspect_shows_it(queue: djobs.Queue, db_url: str) -> None:
    seen: list[str | None] = []

    def parse_invoice(attempt: int) -> None:
        raise ValueError(f"attempt {attempt} \x1b[2J failed")

    def flaky(ctx: djobs.Context, args: Any) -> None:
        if ctx.job.attempt > 1:  # the previous attempt's traceback is stored before this one runs
            seen.append(queue.get_job(ctx.job_id).last_traceback)  # type: ignore[union-attr]
        parse_invoice(ctx.job.attempt)

    queue.register("flaky", flaky, retries=1, backoff=djobs.Backoff(initial=0.1, maximum=0.1))
    job_id = queue.enqueue("flaky", None)
    with running(queue):
        wait_until(lambda: (j := queue.get_job(job_id)) is not None and j.status.value == "failed", 60, "two attempts")
    assert len(seen) == 1 and seen[0] is not None and "parse_invoice" in seen[0] and "attempt 1" in seen[0]
    job = queue.get_job(job_id)
    assert job is not None and job.last_traceback is not None
    assert "parse_invoice" in job.last_traceback and "ValueError: attempt 2" in job.last_traceback

    djobs_exe = Path(sys.executable).with_name("djobs")
    shown = subprocess.run([str(djobs_exe), "--database", db_url, "inspect", job_id], capture_output=True, text=True,
                           timeout=120, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": "/tmp"})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "traceback" in shown.stdout and "parse_invoice" in shown.stdout, shown.stdout
    assert "\x1b" not in shown.stdout and "attempt 2 \\x1b[2J failed" in shown.stdout
    as_json = subprocess.run([str(djobs_exe), "--database", db_url, "--json", "inspect", job_id], capture_output=True,
                             text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})  # fmt: skip
    assert json.loads(as_json.stdout)["last_traceback"] == job.last_traceback


def test_abandoned_handlers_counts_only_handlers_still_running(queue: djobs.Queue) -> None:
    """A cancelled async handler that stops is not abandoned; a sync one sleeping past its limit is, until
    it returns (its late result dropped)."""
    import asyncio
    import threading

    release = threading.Event()

    def sleepy(args: Any) -> str:
        release.wait(60)
        return "late"

    async def polite(args: Any) -> None:
        await asyncio.sleep(600)

    queue.register("sleepy", sleepy, retries=0, timeout=0.3)
    queue.register("polite", polite, retries=0, timeout=0.3)
    ids = [queue.enqueue("sleepy", None), queue.enqueue("polite", None)]
    with running(queue) as worker:
        wait_until(lambda: all(queue.get_job(i).status.value == "failed" for i in ids), 60, "both to time out")  # type: ignore[union-attr]
        wait_until(lambda: worker.abandoned_handlers == 1, 30, "only the sleepy thread to count as abandoned")
        release.set()
        wait_until(lambda: worker.abandoned_handlers == 0, 30, "the sleepy thread to be counted back")
    job = queue.get_job(ids[0])
    assert job is not None and job.status is djobs.JobStatus.FAILED and job.result is None


def test_endings_that_break_their_own_recording_fail_within_the_attempts(queue: djobs.Queue) -> None:
    """An exception whose str() raises, a 5 MB message, an exception group and a returned generator are
    failures like any other: attempts spent, nothing refunded, the stored error bounded."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str() blew up")

    def unprintable(args: Any) -> None:
        raise Unprintable()

    def huge(args: Any) -> None:
        raise ValueError("x" * 5_000_000)

    def group(args: Any) -> None:
        raise ExceptionGroup("several", [ValueError("a"), KeyError("b")])

    def generator(args: Any) -> Any:
        return (i for i in range(3))

    backoff = djobs.Backoff(initial=0.05, maximum=0.05)
    for name, fn in (("unprintable", unprintable), ("huge", huge), ("group", group), ("generator", generator)):
        queue.register(name, fn, retries=1, backoff=backoff)
    ids = {name: queue.enqueue(name, None) for name in ("unprintable", "huge", "group", "generator")}
    with running(queue):
        wait_until(lambda: all(queue.get_job(i).status.value == "failed" for i in ids.values()), 60, "all to fail")  # type: ignore[union-attr]
    jobs = {name: queue.get_job(i) for name, i in ids.items()}
    for name, job in jobs.items():
        assert job is not None and job.refunds == 0 and starts(queue, job.id) == job.attempt, name
        assert job.last_error is not None and len(job.last_error) <= 4000 and job.last_traceback, name
    assert jobs["unprintable"].attempt == 2 and jobs["unprintable"].last_error.startswith("Unprintable")  # type: ignore[union-attr]
    assert jobs["huge"].attempt == 2 and jobs["huge"].last_error.startswith("ValueError: xxx")  # type: ignore[union-attr]
    assert jobs["group"].attempt == 2 and "several" in jobs["group"].last_error  # type: ignore[union-attr,operator]
    assert jobs["generator"].attempt == 1  # type: ignore[union-attr]
    assert jobs["generator"].last_error.startswith("the result cannot be stored")  # type: ignore[union-attr]


def test_errors_the_database_cannot_hold_as_they_are_are_stored_escaped(queue: djobs.Queue) -> None:
    """A NUL (PostgreSQL refuses it in text) or a lone surrogate (not UTF-8) in a handler's error, a step's
    NoRetry or a traceback is stored as an escape; before, on PostgreSQL, the worker's every round failed on
    it and the jobs finished beside it were never recorded either."""

    def nul(args: Any) -> None:
        raise ValueError("before\x00after")

    def surrogate(args: Any) -> None:
        raise ValueError("lone \ud800 surrogate")

    def step(ctx: djobs.Context, args: Any) -> None:
        ctx.call("inner", None)

    def inner(args: Any) -> None:
        raise djobs.NoRetry("step\x00\udfff")

    for name, fn in (("nul", nul), ("surrogate", surrogate), ("step", step), ("inner", inner), ("fine", lambda: 7)):
        queue.register(name, fn, retries=0)
    ids = {name: queue.enqueue(name, None) for name in ("nul", "surrogate", "step", "fine")}
    with running(queue):
        wait_until(lambda: all(queue.get_job(i).status.value in ("failed", "completed") for i in ids.values()), 30,  # type: ignore[union-attr]
                   "every job to end")  # fmt: skip
    jobs = {name: queue.get_job(i) for name, i in ids.items()}
    assert jobs["fine"].status is djobs.JobStatus.COMPLETED and jobs["fine"].result == 7  # type: ignore[union-attr]
    assert jobs["nul"].last_error == "ValueError: before\\x00after"  # type: ignore[union-attr]
    assert jobs["surrogate"].last_error == "ValueError: lone \\ud800 surrogate"  # type: ignore[union-attr]
    assert jobs["step"].last_error.startswith("NoRetry: step\\x00\\udfff")  # type: ignore[union-attr]
    for name in ("nul", "surrogate", "step"):
        job = jobs[name]
        assert job is not None and job.status is djobs.JobStatus.FAILED and job.last_traceback, name
        assert "\x00" not in job.last_traceback and "\\x00" in job.last_traceback or name == "surrogate"
    (checkpoint,) = queue.checkpoints(ids["step"])
    assert checkpoint.error == "step\\x00\\udfff"


def test_an_outcome_the_database_refuses_fails_its_job_and_the_worker_goes_on(queue: djobs.Queue) -> None:
    """The database refuses one completion for what it holds (here a trigger or CHECK constraint of its own):
    the round is written outcome by outcome, that job fails naming the refusal, the jobs finished beside it
    are recorded, and the worker claims on. Before, the worker retried the same round forever."""
    if queue.storage.is_pg:
        sql(queue.storage, "ALTER TABLE djobs_jobs ADD CONSTRAINT refuse_poison CHECK (result IS NULL OR strpos(result, 'poison') = 0)")
    else:
        sql(queue.storage, "CREATE TRIGGER refuse_poison BEFORE UPDATE ON djobs_jobs WHEN NEW.result LIKE '%poison%' "
                           "BEGIN SELECT RAISE(ABORT, 'poison refused by a trigger'); END")  # fmt: skip
    queue.register("poison", lambda args: "poison", retries=3)
    queue.register("fine", lambda args: args)
    events: list[str] = []
    queue.on_job_fail(lambda job, exc: events.append(f"{job.id}:{type(exc).__name__}"))
    poison = queue.enqueue("poison", None)
    fine = [queue.enqueue("fine", i) for i in range(6)]
    with running(queue, queues={"default": 4}):
        wait_until(lambda: all(queue.get_job(i).status.value in ("completed", "failed") for i in [poison, *fine]), 30,  # type: ignore[union-attr]
                   "every job to end")  # fmt: skip
        later = queue.enqueue("fine", 99)
        wait_until(lambda: queue.get_job(later).status is djobs.JobStatus.COMPLETED, 30, "a job enqueued after it to run")  # type: ignore[union-attr]
    job = queue.get_job(poison)
    assert job is not None and job.status is djobs.JobStatus.FAILED and job.attempt == 1
    assert job.last_error is not None and job.last_error.startswith("djobs could not record this attempt's outcome (completed)")
    assert "refuse" in job.last_error and job.result is None
    assert [queue.get_job(i).result for i in fine] == list(range(6))  # type: ignore[union-attr]
    assert events == [f"{poison}:StorageRefused"]
