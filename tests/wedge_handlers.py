"""Misbehaving handlers for tests/test_wedges_handlers.py, run by real worker processes
(`tests/worker_proc.py --handlers wedge_handlers`).

Each records what it does in the shared ledger (tests/core_handlers.py `Ledger`), so a test can tell a
handler that started from one that was never run; the run counts a test asserts come from the database.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import peewee
from core_handlers import Ledger

import djobs


def raise_kind(kind: str) -> None:
    """The exception a handler's own code might raise that looks like djobs's own machinery."""
    errors: dict[str, BaseException] = {
        "operational": peewee.OperationalError("no such table: invoices"),
        "interface": peewee.InterfaceError("connection already closed"),
        "storage": djobs.StorageUnavailable("the handler's own storage is down"),
        "job_cancelled": djobs.JobCancelled("raised by the handler itself"),
        "asyncio_cancelled": asyncio.CancelledError(),
    }
    raise errors[kind]


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def register(queue: djobs.Queue, ledger: Ledger, only: set[str] | None = None, hooks: bool = False) -> None:
    def ok(ctx: djobs.Context, args: Any) -> int:
        ledger.record("run", ctx.job_id, attempt=ctx.job.attempt, type="ok")
        return os.getpid()

    def hang(ctx: djobs.Context, args: Any) -> None:
        """A sync handler that never looks at ctx.cancelled: only abandoning its thread frees the slot."""
        ledger.record("start", ctx.job_id, attempt=ctx.job.attempt)
        time.sleep(600)

    async def ahang(ctx: djobs.Context, args: Any) -> None:
        ledger.record("start", ctx.job_id, attempt=ctx.job.attempt)
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            ledger.record("cancelled", ctx.job_id, attempt=ctx.job.attempt)
            raise

    async def stubborn(ctx: djobs.Context, args: Any) -> None:
        """An async handler that swallows every cancellation and keeps waiting."""
        ledger.record("start", ctx.job_id, attempt=ctx.job.attempt)
        while True:
            try:
                await asyncio.sleep(600)
            except asyncio.CancelledError:
                ledger.record("swallowed", ctx.job_id, attempt=ctx.job.attempt)

    def raiser(ctx: djobs.Context, args: dict[str, Any]) -> None:
        ledger.record("run", ctx.job_id, attempt=ctx.job.attempt)
        raise_kind(args["kind"])

    async def araiser(ctx: djobs.Context, args: dict[str, Any]) -> None:
        ledger.record("run", ctx.job_id, attempt=ctx.job.attempt)
        await asyncio.sleep(0)
        raise_kind(args["kind"])

    def retry_after(ctx: djobs.Context, args: dict[str, Any]) -> None:
        ledger.record("run", ctx.job_id, attempt=ctx.job.attempt)
        raise djobs.RetryAfter(float(args["delay"]), "try later")

    def deep(ctx: djobs.Context, args: dict[str, Any]) -> Any:
        ledger.record("run", ctx.job_id, attempt=ctx.job.attempt)
        return nested(int(args["depth"]))

    def boom(args: Any) -> None:
        raise ValueError("kaput")

    def step_fails(ctx: djobs.Context, args: Any) -> None:
        ctx.call("ok", None)
        ctx.call("boom", {"n": 1})

    def fan_fails(ctx: djobs.Context, args: Any) -> None:
        ctx.fan_out([djobs.Sub("ok"), djobs.Sub("boom")], retries=0)

    def fan_hangs(ctx: djobs.Context, args: dict[str, Any]) -> None:
        ledger.record("fan", ctx.job_id, attempt=ctx.job.attempt)
        ctx.fan_out([djobs.Sub("hang", retries=0)], timeout=float(args["timeout"]))

    handlers: dict[str, Any] = {
        "ok": ok, "hang": hang, "ahang": ahang, "stubborn": stubborn, "raiser": raiser, "araiser": araiser,
        "retry_after": retry_after, "deep": deep, "boom": boom, "step_fails": step_fails, "fan_fails": fan_fails,
        "fan_hangs": fan_hangs,
    }  # fmt: skip
    retries = {"hang": 1, "ahang": 1, "stubborn": 1, "raiser": 2, "araiser": 2, "retry_after": 3, "deep": 3}
    for name, fn in handlers.items():
        if only is None or name in only:
            queue.register(name, fn, retries=retries.get(name, 0))
