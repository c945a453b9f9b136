"""Durable steps: checkpointed calls and named checkpoints.

A call's checkpoint is keyed by (job id, call path): top-level calls are numbered 0, 1, 2 … in execution
order and a call made inside call 1 is "1.0", so replaying a finished outer call (which skips its inner
calls) does not shift the numbering of what follows. A fan-out, a sleep and a signal wait take a call
index too.

Every checkpoint write is guarded by ownership of the running job, so a worker that lost its job (reclaimed,
cancelled, paused) cannot write into the job's history. A storage failure during a durable write surfaces
as `StorageLost` (never as an exception a handler could mistake for its own), so the worker gives the job
back instead of failing it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
from typing import TYPE_CHECKING, Any

from djobs import codec, tracing, validate
from djobs.context import Context, _current
from djobs.errors import (
    MAX_MESSAGE,
    DeterminismError,
    NoRetry,
    OwnershipLost,
    StorageLost,
    StorageUnavailable,
    Suspend,
    has_no_retry,
    safe_str,
)
from djobs.event_types import CheckpointSaved
from djobs.registry import encode_args

if TYPE_CHECKING:
    from djobs.registry import Handler

#: Prefix of the note a failing durable step adds to its exception, so the job's error names the step.
STEP_NOTE = "in durable step "
#: Durable calls nest at most this deep (their checkpoint keys grow with the depth).
MAX_CALL_DEPTH = 100
# Values of these exact types come back from a JSON round trip unchanged, so a step's args or result of
# one is not decoded again from its JSON text (what a step gets of anything else is that decoded copy).
_SAME_AFTER_JSON = frozenset({str, int, bool, type(None)})


def invoke(handler: Handler, ctx: Context, args: Any) -> Any:
    """Call a handler with the shape it takes, `ctx` current for `djobs.current_job()` and friends."""
    token = _current.set(ctx)
    try:
        params = (ctx, args) if handler.wants_ctx else (args,) if handler.takes_args else ()
        result = handler.fn(*params)
        if inspect.iscoroutine(result):  # (asyncio.iscoroutine also takes a plain generator for one)
            result = _run_coroutine(result)
        return result
    finally:
        _current.reset(token)


def _run_coroutine(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside a running loop (an async handler's durable call): run it on a helper thread, in a
    # copy of this context, so the step sees its own `djobs.current_job()` (and the tracing span).
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, asyncio.run, coro).result()


def storage_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A storage operation made on the handler's behalf: the database being away is not the handler's
    failure, so it unwinds the handler as StorageLost (a BaseException) and the worker gives the job back."""
    try:
        return fn(*args, **kwargs)
    except StorageUnavailable as exc:
        raise StorageLost(str(exc)) from exc


def _write_call_checkpoint(ctx: Context, key: str, index: int, name: str, value: str | None, error: str | None) -> None:
    data = codec.dumps({"call_index": index, "name": name, "key": key})
    storage_call(ctx.queue.storage.write_call_checkpoint, ctx.owner, ctx.job.queue, key, index, name, value, error, data)
    ctx.replay_state().rows[key] = (name, value, error)
    ctx.queue.emit(CheckpointSaved(job_id=ctx.job.id, call_index=index, name=name))


def check_name(key: str, stored: str, name: str) -> None:
    if stored != name:
        raise DeterminismError(
            f"determinism violation at durable call #{key[2:]}: the checkpoint holds {stored!r} "
            f"but the handler now calls {name!r}"
        )


def call(ctx: Context, name: str, args: Any) -> Any:
    if ctx.depth >= MAX_CALL_DEPTH:
        raise NoRetry(f"durable calls nest more than {MAX_CALL_DEPTH} deep (at {name!r})")
    key, index = ctx.next_step()
    stored = ctx.replay_state().rows.get(key)
    if stored is not None:
        check_name(key, stored[0], name)
        if stored[2] is not None:
            raise NoRetry(stored[2])
        return codec.loads(stored[1])
    handler = ctx.queue.get_handler(name)
    if type(args) in _SAME_AFTER_JSON:
        given = args if handler.args_type is Any else handler.decode(args)
    else:
        given = handler.decode(codec.loads(handler.check_args(args)))
    child = ctx.child(key)
    try:
        with tracing.step(name, key) if tracing.on else tracing.OFF:
            value = invoke(handler, child, given)
    except (OwnershipLost, Suspend, StorageLost):
        raise
    except BaseException as exc:
        if isinstance(exc, Exception) and has_no_retry(exc):
            # A NoRetry is an outcome: checkpoint it so replay raises it again without running.
            _write_call_checkpoint(ctx, key, index, name, None, safe_str(exc)[:MAX_MESSAGE] or type(exc).__name__)
        if isinstance(exc, Exception):
            exc.add_note(f"{STEP_NOTE}{name!r} (#{key[2:]})")
        raise
    try:
        text = encode_args(value, "it")
    except (TypeError, ValueError) as exc:
        raise NoRetry(f"durable call {name!r} (step #{key[2:]}) returned a value that cannot be stored: {exc}") from None
    _write_call_checkpoint(ctx, key, index, name, text, None)
    return value if type(value) in _SAME_AFTER_JSON else codec.loads(text)


def save_checkpoint(ctx: Context, name: str, value: Any) -> None:
    validate.name("checkpoint name", name)
    text = encode_args(value, "a checkpoint value")
    data = codec.dumps({"call_index": None, "name": name})
    storage_call(ctx.queue.storage.save_named_checkpoint, ctx.owner, ctx.job.queue, name, text, data)
    ctx.replay_state().rows[f"p:{name}"] = (name, text, None)
    ctx.queue.emit(CheckpointSaved(job_id=ctx.job.id, call_index=None, name=name))


def load_checkpoint(ctx: Context, name: str) -> tuple[Any, bool]:
    stored = ctx.replay_state().rows.get(f"p:{name}")
    if stored is None:
        return None, False
    return codec.loads(stored[1]), True
