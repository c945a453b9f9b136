"""`{ sleep = "1h" }` and `{ wait_signal = "approved", timeout = "2d" }` steps of `[workflows.*]`: parsed and
validated from TOML (problems name the table and key), shown back by `config show`, and run durably on
SQLite and PostgreSQL (the signal's payload is the next step's input; a sleep passes the value on)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from core_support import running
from durable_handlers import wait_status

import djobs
from djobs import config as cfg
from djobs import workflows

pytestmark = pytest.mark.timeout(120)

TOML = """
[workflows.approval]
steps = ["double", { wait_signal = "approved", timeout = "1m" }, "double", { sleep = "0.5s" }, "double"]

[workflows.forever]
steps = [{ wait_signal = "go" }]
"""


def parse(text: str) -> tuple[cfg.Config, list[str]]:
    return cfg.validate(tomllib.loads(text))


def test_steps_parse_and_show_back() -> None:
    conf, problems = parse(TOML)
    assert problems == []
    steps = conf.workflows["approval"].steps
    assert steps[1] == cfg.Step("", wait_signal="approved", timeout=60.0)
    assert steps[3] == cfg.Step("", sleep=0.5)
    assert conf.workflows["forever"].steps == (cfg.Step("", wait_signal="go"),)
    shown = conf.to_dict()["workflows"]
    assert shown["approval"]["steps"][1] == {"wait_signal": "approved", "timeout": "60s"}
    assert shown["approval"]["steps"][3] == {"sleep": "0.5s"}
    again, problems = cfg.validate(conf.to_dict())
    assert problems == [] and again.workflows == conf.workflows
    doc = workflows.handler(conf.workflows["approval"]).__doc__
    assert doc == "Workflow 'approval': double → wait_signal(approved) → double → sleep(0.5s) → double"


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ('{ sleep = "soon" }', "steps[0].sleep: bad duration 'soon'"),
        ("{ sleep = -1 }", "steps[0].sleep: bad duration -1"),
        ('{ sleep = "1h", timeout = "2h" }', "steps[0].timeout: unknown key (known: sleep)"),
        ('{ wait_signal = "" }', "steps[0].wait_signal: signal name must not be empty"),
        ("{ wait_signal = 3 }", "steps[0].wait_signal: signal name must be a string"),
        ('{ wait_signal = "a", timeout = "x" }', "steps[0].timeout: bad duration 'x'"),
        ('{ wait_signal = "a", over = "k" }', "steps[0].over: unknown key (known: wait_signal, timeout)"),
        ('{ wait_signal = "a", sleep = "1s" }', "steps[0]: must be one of"),
        ("{ timeout = 5 }", "steps[0].timeout: unknown key (known: fan_out, over)"),
    ],
)
def test_bad_steps_are_config_problems(step: str, problem: str) -> None:
    conf, problems = parse(f"[workflows.w]\nsteps = [{step}]\n")
    assert "w" not in conf.workflows
    assert any("[workflows.w]" in p and problem in p for p in problems), problems


@pytest.fixture
def wq(queue: djobs.Queue) -> djobs.Queue:
    conf, problems = parse(TOML)
    assert problems == []
    queue.register("double", lambda n: n * 2)
    for wf in conf.workflows.values():
        queue.register(wf.name, workflows.handler(wf))
    return queue


def test_signal_payload_feeds_the_next_step_and_sleep_passes_the_value(wq: djobs.Queue) -> None:
    job_id = wq.enqueue("approval", 1)
    with running(wq):
        wait_status(wq, job_id, "waiting", timeout=30)
        assert wq.get_job(job_id).wait_signal == "approved"  # type: ignore[union-attr]
        wq.signal(job_id, "approved", 5)
        job = wait_status(wq, job_id, "completed", timeout=30)
    assert job.result == 20  # 5 (the payload) doubled, slept, doubled
    names = [c.name for c in wq.checkpoints(job_id)]
    assert names == ["double", "wait_for_signal", "double", "sleep", "double"]
    kinds: list[Any] = [e.kind for e in wq.events_since(0, limit=1000, job_id=job_id)]
    assert {"job_waiting_signal", "signal_received", "job_sleeping"} <= set(kinds)


def test_signal_step_timeout_fails_the_workflow(wq: djobs.Queue) -> None:
    conf, _ = parse('[workflows.brief]\nsteps = [{ wait_signal = "late", timeout = "0.3s" }, "double"]\n')
    wq.register("brief", workflows.handler(conf.workflows["brief"]))
    job_id = wq.enqueue("brief", 1)
    with running(wq):
        job = wait_status(wq, job_id, "failed", timeout=30)
    assert "SignalTimeout" in (job.last_error or "") and job.attempt == 1
