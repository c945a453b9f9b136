"""Workflows declared in TOML (`[workflows.NAME]`), run as durable job types.

A workflow is a job whose handler runs its steps in order, each as a durable call, so a crash mid-workflow
resumes at the first unfinished step (finished steps replay from their checkpoints)::

    [workflows.nightly-etl]
    steps = ["extract", "transform", { fan_out = "load-partition", over = "partitions" }, "publish"]

    [workflows.approval]
    steps = ["draft", { wait_signal = "approved", timeout = "2d" }, "publish", { sleep = "1h" }, "remind"]

    queue.register("nightly-etl", djobs.workflows.handler(conf.workflows["nightly-etl"]))
    queue.enqueue("nightly-etl", {"day": "2026-11-28"})

The first step gets the workflow's args; every later step gets the previous step's result. A fan-out step
runs one sub-job per element of the list under `over` in the previous result (or of the previous result
itself when `over` is omitted) and passes the list of their results, in order, to the next step. The
workflow's result is the last step's result. A fan-out fails fast: one failed sub-job fails the workflow.
A sleep step waits durably (holding no worker) and passes the previous result on; a signal step waits for
the signal and passes its payload on (past its timeout, `djobs.SignalTimeout` fails the workflow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import djobs
from djobs.config import Step, WorkflowConfig
from djobs.jobs import TERMINAL_VALUES


def run_steps(ctx: djobs.Context, name: str, steps: tuple[Step, ...], args: Any) -> Any:
    """Run `steps` inside the job of `ctx` and return the last step's result."""
    value = args
    for index, step in enumerate(steps):
        if step.sleep is not None:
            ctx.sleep(step.sleep)  # the value passes through to the next step
            continue
        if step.wait_signal is not None:
            value = ctx.wait_for_signal(step.wait_signal, timeout=step.timeout)
            continue
        if not step.fan_out:
            value = ctx.call(step.job, value)
            continue
        items = _fan_out_items(name, index, step, value)
        try:
            results = ctx.fan_out([djobs.Sub(step.job, item) for item in items], strategy=djobs.FAIL_FAST)
        except djobs.FanOutFailed as exc:  # say which sub-job failed and why, not just how many
            raise djobs.NoRetry(f"{_where(name, index, step)}: {_failures(exc.results)}") from exc
        value = djobs.values(results)
    return value


def _failures(results: list[djobs.Result]) -> str:
    """Fail-fast decides at the first failure, so siblings may still be running then: they are not
    failures, and the sub-job named is one that really failed."""
    bad = [r for r in results if r.error is not None]
    failed = [r for r in bad if getattr(r.error, "status", None) in TERMINAL_VALUES]
    unfinished = len(bad) - len(failed)
    text = f"{len(failed)} of {len(results)} sub-jobs failed"
    if unfinished:
        text += f" ({unfinished} unfinished when it stopped)"
    named = (failed or bad)[:1]
    return text + "".join(f"; sub-job {r.index + 1}: {r.error}" for r in named)


def _where(name: str, index: int, step: Step) -> str:
    return f"workflow {name!r} step {index + 1} (fan_out {step.job!r})"


def _fan_out_items(name: str, index: int, step: Step, value: Any) -> list[Any]:
    where = _where(name, index, step)
    if step.over is None:
        items = value
        if not isinstance(items, list):
            raise djobs.NoRetry(f"{where}: the previous result must be a list, got {type(value).__name__}")
        return items
    if not isinstance(value, dict) or step.over not in value:
        raise djobs.NoRetry(f"{where}: the previous result has no key {step.over!r}")
    items = value[step.over]
    if not isinstance(items, list):
        raise djobs.NoRetry(f"{where}: {step.over!r} in the previous result must be a list")
    return items


def handler(workflow: WorkflowConfig) -> Callable[..., Any]:
    """The job handler `fn(ctx, args)` that runs `workflow`."""
    steps, name = workflow.steps, workflow.name

    def run_workflow(ctx: djobs.Context, args):  # type: ignore[no-untyped-def]  # args: any JSON value
        return run_steps(ctx, name, steps, args)

    run_workflow.__name__ = f"workflow_{name.replace('-', '_')}"
    run_workflow.__qualname__ = run_workflow.__name__
    run_workflow.__doc__ = f"Workflow {name!r}: " + " → ".join(_label(s) for s in steps)
    return run_workflow


def _label(step: Step) -> str:
    if step.sleep is not None:
        return f"sleep({step.sleep:g}s)"
    if step.wait_signal is not None:
        return f"wait_signal({step.wait_signal})"
    return f"fan_out({step.job})" if step.fan_out else step.job
