"""The job types the proof commands register: `selftest.*` (they write the side-effect ledger) and `bench.*`.

    register_selftest(queue, Ledger(dir))    # in selftest worker processes
    register_selftest(queue, None)           # in the orchestrator, which only enqueues
    register_bench(queue)

Every selftest handler writes its ledger row *before* the work it stands for, so a row means "this run
started its side effect"; the invariant checks in `djobs.proof.invariants` read these rows.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import djobs
from djobs.proof import durable_time, misbehave
from djobs.proof.ledger import Ledger

SELFTEST_TYPES = (
    "selftest.plain",
    "selftest.slow",
    "selftest.fail",
    "selftest.workflow",
    "selftest.step",
    "selftest.fanout",
    "selftest.child",
    "selftest.unique",
    "selftest.tick",
    *durable_time.TYPES,
    *misbehave.TYPES,
)


def strategy(name: str, fraction: float = 0.8) -> Any:
    if name == "fail_fast":
        return djobs.FAIL_FAST
    if name == "collect_all":
        return djobs.COLLECT_ALL
    return djobs.threshold(fraction)


def register_selftest(queue: Any, ledger: Ledger | None) -> None:
    def note(kind: str, **fields: Any) -> None:
        if ledger is None:
            raise RuntimeError("selftest handlers run only in selftest worker processes")
        ledger.write(kind, **fields)

    def plain(ctx: djobs.Context, args: dict[str, Any]) -> int:
        note("plain", job=ctx.job_id, phase="start")
        time.sleep(float(args.get("sleep", 0)))
        note("plain", job=ctx.job_id, phase="end")
        return int(args.get("n", 0))

    def fail(ctx: djobs.Context, args: dict[str, Any]) -> None:
        note("fail", job=ctx.job_id, attempt=ctx.job.attempt)
        raise RuntimeError("selftest: this job always fails")

    def step(args: dict[str, Any]) -> str:
        token = uuid.uuid4().hex
        note("step", wf=args["wf"], i=args["i"], token=token)
        time.sleep(float(args.get("sleep", 0)))
        return token

    def workflow(ctx: djobs.Context, args: dict[str, Any]) -> list[str]:
        tokens = [
            ctx.call("selftest.step", {"wf": ctx.job_id, "i": i, "sleep": args.get("sleep", 0)})
            for i in range(int(args["steps"]))
        ]
        note("wf_done", job=ctx.job_id, tokens=tokens)
        return tokens

    def fanout(ctx: djobs.Context, args: dict[str, Any]) -> list[bool]:
        failing = set(args["failing"])
        subs = [
            djobs.Sub(
                "selftest.child",
                {"i": k, "fail": k in failing, "sleep": args.get("sleep", 0)},
                retries=0 if k in failing else 10,
            )
            for k in range(int(args["width"]))
        ]
        results = ctx.fan_out(subs, strategy=strategy(args["strategy"], float(args.get("threshold", 0.8))))
        oks = [r.ok for r in results]
        note("fanout_done", job=ctx.job_id, oks=oks)
        return oks

    def child(ctx: djobs.Context, args: dict[str, Any]) -> int:
        note("child", job=ctx.job_id, fail=bool(args["fail"]))
        time.sleep(float(args.get("sleep", 0)))
        if args["fail"]:
            raise djobs.NoRetry("selftest: planned failure")
        return int(args["i"])

    def unique(ctx: djobs.Context, args: dict[str, Any]) -> None:
        note("unique", job=ctx.job_id, key=args["key"], phase="start")
        time.sleep(float(args.get("sleep", 0)))
        note("unique", job=ctx.job_id, key=args["key"], phase="end")

    def tick(ctx: djobs.Context, args: Any) -> None:
        note("tick", job=ctx.job_id)

    queue.register("selftest.plain", plain, retries=10)
    queue.register("selftest.slow", plain, retries=10)
    queue.register("selftest.fail", fail, retries=2)
    queue.register("selftest.step", step)
    queue.register("selftest.workflow", workflow, retries=10)
    queue.register("selftest.fanout", fanout, retries=10)
    queue.register("selftest.child", child, retries=10)
    queue.register("selftest.unique", unique, retries=10)
    queue.register("selftest.tick", tick, retries=10)
    durable_time.register(queue, note)
    misbehave.register(queue, ledger)


def register_bench(queue: Any) -> None:
    def noop(args: Any) -> None:
        return None

    def stamp(args: Any) -> float:
        return time.time()  # the handler's start, for enqueue -> handler start latency

    def workflow(ctx: djobs.Context, args: dict[str, Any]) -> int:
        for _ in range(int(args["steps"])):
            ctx.call("bench.noop", None)
        return int(args["steps"])

    def fanout(ctx: djobs.Context, args: dict[str, Any]) -> int:
        results = ctx.fan_out([djobs.Sub("bench.noop", None) for _ in range(int(args["width"]))])
        return len(results)

    queue.register("bench.noop", noop)
    queue.register("bench.stamp", stamp)
    queue.register("bench.workflow", workflow)
    queue.register("bench.fanout", fanout)
