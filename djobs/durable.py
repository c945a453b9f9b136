"""Durable primitives: checkpointed calls, named checkpoints, and fan-out/fan-in.

A call's checkpoint is keyed by (job id, call path): top-level calls are numbered 0, 1, 2 … in execution
order and a call made inside call 1 is "1.0", so replaying a finished outer call (which skips its inner
calls) does not shift the numbering of what follows. A fan-out takes a call index too.

Every checkpoint write is guarded by ownership of the running job, so a worker that lost its job (reclaimed,
cancelled, paused) cannot write into the job's history.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from djobs import codec
from djobs.context import Context, _current, _Replay
from djobs.errors import (
    DeterminismError,
    FanOutFailed,
    NoRetry,
    OwnershipLost,
    Suspend,
    has_no_retry,
)
from djobs.events import CheckpointSaved
from djobs.jobs import FAIL_FAST, Result, Strategy, Sub, strategy_from_str
from djobs.retry import to_seconds

if TYPE_CHECKING:
    from djobs.registry import Handler

FAN_OUT = "fan_out"


def load_replay(ctx: Context) -> _Replay:
    store = ctx.queue.storage
    rows = store.execute(
        store.dialect.render("SELECT key, name, value, error FROM djobs_checkpoints WHERE job_id = ?"),
        (ctx.job.id,),
    ).fetchall()
    return _Replay({r[0]: (r[1], r[2], r[3]) for r in rows})


def invoke(handler: Handler, ctx: Context, args: Any) -> Any:
    """Call a handler with the shape it takes, `ctx` current for `djobs.current_job()` and friends."""
    token = _current.set(ctx)
    try:
        params = (ctx, args) if handler.wants_ctx else (args,) if handler.takes_args else ()
        result = handler.fn(*params)
        if asyncio.iscoroutine(result):
            result = _run_coroutine(result)
        return result
    finally:
        _current.reset(token)


def _run_coroutine(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside a running loop (an async handler's durable call): run it on a helper thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _write_call_checkpoint(ctx: Context, key: str, index: int, name: str, value: str | None, error: str | None) -> None:
    store = ctx.queue.storage
    job = ctx.job

    def op() -> None:
        cur = store.execute(
            store.sql["call_ckpt"], (job.id, key, index, name, value, error, job.id, ctx.worker_id, job.attempt)
        )
        if cur.rowcount == 0:
            owned = store.execute(
                store.dialect.render(
                    "SELECT 1 FROM djobs_jobs WHERE id = ? AND locked_by = ? AND attempt = ? AND status = 'running'"
                ),
                (job.id, ctx.worker_id, job.attempt),
            ).fetchone()
            if not owned:
                raise OwnershipLost(job.id)
        ctx.queue._persist_event_in_tx(
            "checkpoint_saved", job, ctx.worker_id, {"call_index": index, "name": name, "key": key}
        )

    store.group(op)
    ctx._replay_state().rows[key] = (name, value, error)
    ctx.queue.emit(CheckpointSaved(job_id=job.id, call_index=index, name=name))


def _check_name(key: str, index: int, stored: str, name: str) -> None:
    if stored != name:
        raise DeterminismError(
            f"determinism violation at durable call #{key[2:]}: the checkpoint holds {stored!r} "
            f"but the handler now calls {name!r}"
        )


def call(ctx: Context, name: str, args: Any) -> Any:
    key, index = ctx._next_key()
    stored = ctx._replay_state().rows.get(key)
    if stored is not None:
        _check_name(key, index, stored[0], name)
        if stored[2] is not None:
            raise NoRetry(stored[2])
        return codec.loads(stored[1])
    handler = ctx.queue.get_handler(name)
    args_json = handler.check_args(args)
    child = ctx.child(key)
    try:
        value = invoke(handler, child, handler.decode(codec.loads(args_json)))
    except (OwnershipLost, Suspend):
        raise
    except BaseException as exc:
        if isinstance(exc, Exception) and has_no_retry(exc):
            # A NoRetry is an outcome: checkpoint it so replay raises it again without running.
            _write_call_checkpoint(ctx, key, index, name, None, str(exc) or type(exc).__name__)
        raise
    text = codec.dumps(value)
    _write_call_checkpoint(ctx, key, index, name, text, None)
    return codec.loads(text)


def save_checkpoint(ctx: Context, name: str, value: Any) -> None:
    store = ctx.queue.storage
    text = codec.dumps(value)
    key = f"p:{name}"
    job = ctx.job

    def op() -> None:
        cur = store.execute(store.sql["named_ckpt"], (job.id, key, name, text, job.id, ctx.worker_id, job.attempt))
        if cur.rowcount == 0:
            raise OwnershipLost(job.id)
        ctx.queue._persist_event_in_tx("checkpoint_saved", job, ctx.worker_id, {"call_index": None, "name": name})

    store.group(op)
    ctx._replay_state().rows[key] = (name, text, None)
    ctx.queue.emit(CheckpointSaved(job_id=job.id, call_index=None, name=name))


def load_checkpoint(ctx: Context, name: str) -> tuple[Any, bool]:
    stored = ctx._replay_state().rows.get(f"p:{name}")
    if stored is None:
        return None, False
    return codec.loads(stored[1]), True


def decide(strategy_text: str, total: int, counts: dict[str, int]) -> str | None:
    """'succeeded', 'failed' or None (undecided) for a fan-out's sub-job status counts."""
    strategy = strategy_from_str(strategy_text)
    ok = counts.get("completed", 0)
    bad = counts.get("failed", 0) + counts.get("cancelled", 0)
    if strategy.kind == "collect_all":
        return "succeeded" if ok + bad >= total else None
    if strategy.kind == "fail_fast":
        if bad:
            return "failed"
        return "succeeded" if ok >= total else None
    need = strategy.required(total)
    if total - bad < need:
        return "failed"
    return "succeeded" if ok + bad >= total else None


def _results(ctx: Context, fanout_id: str) -> list[Result]:
    from djobs.errors import SubJobError

    store = ctx.queue.storage
    rows = store.execute(
        store.dialect.render(
            "SELECT id, status, result, last_error, fanout_pos FROM djobs_jobs WHERE fanout_id = ? ORDER BY fanout_pos"
        ),
        (fanout_id,),
    ).fetchall()
    out = []
    for job_id, status, result, last_error, pos in rows:
        if status == "completed":
            out.append(Result(index=pos, job_id=job_id, value=codec.loads(result)))
        else:
            out.append(Result(index=pos, job_id=job_id, error=SubJobError(job_id, status, last_error)))
    return out


def fan_out(
    ctx: Context,
    subs: list[Sub],
    strategy: Strategy | None,
    queue: str | None,
    retries: int | None,
    timeout: timedelta | float | None,
    cancel_on_parent_failure: bool,
) -> list[Result]:
    strategy = strategy or FAIL_FAST
    key, index = ctx._next_key()
    stored = ctx._replay_state().rows.get(key)
    store = ctx.queue.storage
    if stored is not None:
        _check_name(key, index, stored[0], FAN_OUT)
        fanout_id = json.loads(stored[1] or "{}")["fanout_id"]
        row = store.execute(
            store.dialect.render("SELECT decided, strategy FROM djobs_fanouts WHERE id = ?"), (fanout_id,)
        ).fetchone()
        if row is None:
            raise NoRetry(f"fan-out {fanout_id} of checkpoint #{key[2:]} is missing (purged?)")
        if row[0] is None:
            _suspend(ctx, [], None)  # woken early (e.g. resumed by hand): wait again
        results = _results(ctx, fanout_id)
        if row[0] == "failed":
            n_ok = sum(1 for r in results if r.ok)
            raise FanOutFailed(f"fan-out {row[1]} failed: {n_ok} of {len(results)} sub-jobs succeeded", results)
        return results
    if not subs:
        return []
    fanout_id = "f" + uuid.uuid4().hex
    rows = ctx.queue._sub_rows(subs, queue, retries, parent_id=ctx.job.id, fanout_id=fanout_id)
    timeout_s = to_seconds(timeout) if timeout is not None else None
    fan_row = (fanout_id, ctx.job.id, key, str(strategy), len(subs), timeout_s, int(cancel_on_parent_failure))
    _suspend(ctx, rows, fan_row, key=key, index=index)
    raise AssertionError("unreachable")


def _suspend(
    ctx: Context,
    rows: list[tuple[Any, ...]],
    fan_row: tuple[Any, ...] | None,
    key: str = "",
    index: int = 0,
) -> None:
    """One transaction: the parent waits (attempt refunded), the fan-out row, its checkpoint, the sub-jobs."""
    store = ctx.queue.storage
    r = store.dialect.render
    with store.tx():
        if store.execute(store.sql["suspend"], (ctx.job.id, ctx.worker_id, ctx.job.attempt)).rowcount == 0:
            raise OwnershipLost(ctx.job.id)
        if fan_row is not None:
            store.execute(
                r(
                    "INSERT INTO djobs_fanouts (id, parent_id, call_key, strategy, total, timeout_at, "
                    "cancel_on_parent_failure, created_at) VALUES (?, ?, ?, ?, ?, "
                    "{now} + CAST(? AS DOUBLE PRECISION), ?, {now})"
                ),
                fan_row,
            )
            store.execute(
                r(
                    "INSERT INTO djobs_checkpoints (job_id, key, call_index, name, value, error, created_at) "
                    "VALUES (?, ?, ?, ?, ?, NULL, {now})"
                ),
                (ctx.job.id, key, index, FAN_OUT, json.dumps({"fanout_id": fan_row[0], "n": fan_row[4]})),
            )
            cur = store.db.cursor()
            cur.executemany(store.sql["insert_job"], rows)
            ctx.queue._persist_event_in_tx(
                "job_waiting", ctx.job, ctx.worker_id, {"fanout_id": fan_row[0], "sub_jobs": len(rows)}
            )
    if fan_row is not None:
        ctx.queue.emit(CheckpointSaved(job_id=ctx.job.id, call_index=index, name=FAN_OUT))
        store.wake_local()
    raise Suspend(ctx.job.id)
