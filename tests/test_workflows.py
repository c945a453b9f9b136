"""`[workflows.NAME]` as durable job types, and applying a config to a Queue, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import djobs
from djobs import config as cfg
from djobs import workflows


def drain(queue: djobs.Queue, *queues: str) -> None:
    queue.worker(queues={q: 4 for q in queues or ("default",)}, scheduler=False, burst=True).run()


def wf(name: str, *steps: str | tuple[str, str | None]) -> cfg.WorkflowConfig:
    parsed = tuple(
        cfg.Step(s) if isinstance(s, str) else cfg.Step(s[0], fan_out=True, over=s[1]) for s in steps
    )
    return cfg.WorkflowConfig(name, parsed)


@pytest.fixture
def calls() -> dict[str, int]:
    return {}


@pytest.fixture
def etl(queue: djobs.Queue, calls: dict[str, int]) -> djobs.Queue:
    lock = threading.Lock()  # sub-jobs run on several slot threads at once: count atomically

    def counted(name: str, fn: Any) -> Any:
        def handler(args: Any) -> Any:
            with lock:
                calls[name] = calls.get(name, 0) + 1
            return fn(args)

        return handler

    queue.register("extract", counted("extract", lambda a: {"day": a["day"], "parts": [1, 2, 3]}))
    queue.register("double", counted("double", lambda n: n * 2))
    queue.register("total", counted("total", lambda xs: {"sum": sum(xs), "items": xs}))
    queue.register("listing", counted("listing", lambda a: [a, a + 1]))
    return queue


def test_steps_run_in_order_with_fan_out_over_a_key(etl, calls):
    etl.register("etl", workflows.handler(wf("etl", "extract", ("double", "parts"), "total")))
    job_id = etl.enqueue("etl", {"day": "2026-11-28"})
    drain(etl)
    job = etl.get_job(job_id)
    assert job.status == djobs.JobStatus.COMPLETED, job.last_error
    assert job.result == {"sum": 12, "items": [2, 4, 6]}
    assert calls == {"extract": 1, "double": 3, "total": 1}
    assert len(etl.sub_jobs(job_id)) == 3
    assert [c.name for c in etl.checkpoints(job_id) if c.call_index is not None][:1] == ["extract"]


def test_fan_out_without_over_takes_the_whole_previous_result(etl):
    etl.register("chain", workflows.handler(wf("chain", "listing", ("double", None))))
    job_id = etl.enqueue("chain", 5)
    drain(etl)
    assert etl.get_job(job_id).result == [10, 12]


@pytest.mark.parametrize(
    ("steps", "args", "message"),
    [
        (("extract", ("double", "nope")), {"day": 1}, "the previous result has no key 'nope'"),
        (("extract", ("double", "day")), {"day": 1}, "'day' in the previous result must be a list"),
        ((("double", None),), 3, "the previous result must be a list, got int"),
    ],
)
def test_bad_fan_out_input_fails_at_once_naming_the_step(etl, steps, args, message):
    etl.register("bad", workflows.handler(wf("bad", *steps)), retries=3)
    job_id = etl.enqueue("bad", args)
    drain(etl)
    job = etl.get_job(job_id)
    assert job.status == djobs.JobStatus.FAILED and job.attempt == 1  # NoRetry: no retries spent
    assert message in job.last_error and "workflow 'bad' step" in job.last_error


def test_a_failed_sub_job_fails_the_workflow(etl):
    def picky(n: int) -> int:
        if n == 2:
            raise djobs.NoRetry("two is bad")
        return n

    etl.register("picky", picky, retries=0)
    etl.register("wf", workflows.handler(wf("wf", "extract", ("picky", "parts"), "total")), retries=0)
    job_id = etl.enqueue("wf", {"day": "d"})
    drain(etl)
    job = etl.get_job(job_id)
    assert job.status == djobs.JobStatus.FAILED
    # Fail-fast decides at the failure: a sibling still running then is counted apart (a worker with more
    # than one slot may be running it), and the sub-job named is the one that failed.
    assert re.search(
        r"workflow 'wf' step 2 \(fan_out 'picky'\): 1 of 3 sub-jobs failed( \([12] unfinished when it stopped\))?; "
        r"sub-job 2: sub-job [0-9a-f-]{36} failed: NoRetry: two is bad",
        job.last_error,
    ), job.last_error


def test_a_fail_fast_message_counts_only_finished_failures_and_names_one():
    # Fail-fast decides at the first failure; a sibling still running then is not a failure.
    running = djobs.Result(index=0, job_id="a", error=djobs.SubJobError("a", "running", None))
    failed = djobs.Result(index=1, job_id="b", error=djobs.SubJobError("b", "failed", "two is bad"))
    done = djobs.Result(index=2, job_id="c", value=3)
    text = workflows._failures([running, failed, done])
    assert text.startswith("1 of 3 sub-jobs failed (1 unfinished when it stopped); sub-job 2: ")
    assert text.endswith("two is bad")
    assert workflows._failures([done, failed]) == "1 of 2 sub-jobs failed; sub-job 2: sub-job b failed: two is bad"


def test_a_retried_workflow_resumes_at_the_unfinished_step(etl, calls):
    flaky = {"left": 1}

    def publish(value: Any) -> str:
        if flaky["left"]:
            flaky["left"] -= 1
            raise RuntimeError("transient")
        return "published"

    etl.register("publish", publish)
    etl.register("wf", workflows.handler(wf("wf", "extract", ("double", "parts"), "total", "publish")), retries=2)
    job_id = etl.enqueue("wf", {"day": "d"})
    for _ in range(20):  # the retry backs off about a second; drain until it finishes
        drain(etl)
        if etl.get_job(job_id).status == djobs.JobStatus.COMPLETED:
            break
        time.sleep(0.3)
    job = etl.get_job(job_id)
    assert job.status == djobs.JobStatus.COMPLETED and job.result == "published"
    assert calls == {"extract": 1, "double": 3, "total": 1}  # finished steps replayed from checkpoints


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "djobs.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_apply_registers_jobs_workflows_and_schedules(queue, tmp_path, monkeypatch):
    module = "wfmod_" + uuid.uuid4().hex[:8]
    (tmp_path / f"{module}.py").write_text("def inc(n):\n    return n + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    conf = cfg.load(
        write(
            tmp_path,
            f"""
            [jobs.inc]
            handler = "{module}:inc"
            queue = "math"
            retries = 1
            [workflows.twice]
            steps = ["inc", "inc"]
            queue = "flows"
            [schedules.nightly]
            job = "twice"
            daily = "02:30"
            timezone = "Europe/Paris"
            args = 40
            [schedules.often]
            job = "inc"
            every = "10m"
            args = 1
            """,
        )
    )
    cfg.apply(conf, queue)
    assert {"inc", "twice"} <= set(queue.job_types())
    schedules = {s.name: s for s in queue.schedules()}
    assert schedules["nightly"].job == "twice" and schedules["nightly"].timezone == "Europe/Paris"
    assert schedules["nightly"].args == 40 and schedules["nightly"].queue == "flows"
    assert schedules["often"].queue == "math"
    job_id = queue.enqueue("twice", 40)
    assert queue.get_job(job_id).queue == "flows"
    drain(queue, "flows")
    assert queue.get_job(job_id).result == 42


def test_apply_rejects_unknown_job_names(queue, tmp_path):
    conf = cfg.load(write(tmp_path, "[workflows.w]\nsteps = ['ghost']\n"))
    with pytest.raises(djobs.ConfigError, match=r"\[workflows.w\] steps\[0\]: unknown job 'ghost'"):
        cfg.apply(conf, queue)
