"""Handlers of the sleep and signal tests, registered with the durable suites' handlers (so the worker
processes of `durable_worker_proc.py` run them too). Each records its side effects in the ledger."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import djobs


def _j(value: Any) -> str:
    return json.dumps(value, sort_keys=True).replace(" ", "")


def register_time(queue: djobs.Queue, ledger_dir: str | Path, record: Any) -> None:
    led = str(ledger_dir)

    # A step, a durable sleep (seconds, or until an epoch time), a step. Options: fail once after waking;
    # use the module-level twins.
    @queue.handler("sleeper", retries=3)
    def sleeper(ctx: djobs.Context, args: dict) -> str:
        tag = args["tag"]
        record(led, "sleeper-run", tag, ctx.job.attempt, os.getpid())
        ctx.call("step", {"wf": tag, "n": 0})
        if args.get("hang_gate"):
            ctx.call("hang", {"tag": tag, "gate": args["hang_gate"]})
        if "until" in args:
            djobs.sleep_until(datetime.fromtimestamp(args["until"], UTC))
        elif args.get("twin"):
            djobs.sleep(args["seconds"])
        else:
            ctx.sleep(args["seconds"])
        record(led, "woke", tag, repr(time.time()), os.getpid())
        ctx.call("step", {"wf": tag, "n": 1})
        if args.get("fail_after") and ctx.job.attempt == 1:
            raise djobs.RetryAfter(0.05, "fail once after the sleep")
        return tag

    # Waits for signal "go", then sleeps until the epoch time it carries (the many-sleepers test).
    @queue.handler("nap")
    def nap(ctx: djobs.Context, args: dict) -> str:
        until = ctx.wait_for_signal("go")
        ctx.sleep_until(datetime.fromtimestamp(until, UTC))
        record(led, "nap-woke", args["tag"], repr(time.time()), until)
        return args["tag"]

    # A step, then a signal wait for each name in `names` (timeout seconds or None); records each payload.
    # Options: a gated step before the waits; fail once after receiving; catch the timeout.
    @queue.handler("waiter", retries=3)
    def waiter(ctx: djobs.Context, args: dict) -> list:
        tag = args["tag"]
        record(led, "waiter-run", tag, ctx.job.attempt, os.getpid())
        ctx.call("step", {"wf": tag, "n": 0})
        if args.get("hang_gate"):
            ctx.call("hang", {"tag": tag, "gate": args["hang_gate"]})
        got = []
        for name in args["names"]:
            try:
                if args.get("twin"):
                    payload = djobs.wait_for_signal(name, timeout=args.get("timeout"))
                else:
                    payload = ctx.wait_for_signal(name, timeout=args.get("timeout"))
            except djobs.SignalTimeout as exc:
                record(led, "timed-out", tag, name, isinstance(exc, TimeoutError))
                if not args.get("catch"):
                    raise
                payload = "timeout"
            record(led, "got", tag, name, _j(payload), ctx.job.attempt)
            got.append(payload)
        if args.get("fail_after") and ctx.job.attempt == 1:
            raise djobs.RetryAfter(0.05, "fail once after the signals")
        return got

    # check_signal for each name, never waiting.
    @queue.handler("checker")
    def checker(ctx: djobs.Context, args: dict) -> list:
        out = [list(ctx.check_signal(n) if not args.get("twin") else djobs.check_signal(n)) for n in args["names"]]
        record(led, "checked", args["tag"], _j(out))
        return out

    # Invalid durations and names: the job fails with the validation error.
    @queue.handler("bad-wait", retries=0)
    def bad_wait(ctx: djobs.Context, args: dict) -> None:
        kind = args["kind"]
        if kind == "negative":
            ctx.sleep(-1)
        elif kind == "infinite":
            ctx.sleep(float("inf"))
        elif kind == "huge":
            ctx.sleep(1e13)
        elif kind == "not-a-time":
            ctx.sleep_until("tomorrow")  # type: ignore[arg-type]
        elif kind == "bad-name":
            ctx.wait_for_signal("a\x00b")
        elif kind == "bad-timeout":
            ctx.wait_for_signal("ok", timeout=float("nan"))
