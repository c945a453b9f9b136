"""Fan-out / fan-in: sub-jobs written with the parent's switch to `waiting` in one transaction; the
parent replays when the fan-out is decided and gets the results in submission order."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from djobs import codec, tracing, validate
from djobs.context import Context
from djobs.durable.steps import check_name, storage_call
from djobs.errors import FanOutFailed, NoRetry, SubJobError, Suspend
from djobs.event_types import CheckpointSaved
from djobs.jobs import FAIL_FAST, Result, Strategy, Sub
from djobs.retry import to_seconds

FAN_OUT = "fan_out"


def _results(ctx: Context, fanout_id: str) -> list[Result]:
    out = []
    for job_id, status, result, last_error, pos in storage_call(ctx.queue.storage.fanout_results, fanout_id):
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
    key, index = ctx.next_step()
    stored = ctx.replay_state().rows.get(key)
    store = ctx.queue.storage
    if stored is not None:
        check_name(key, stored[0], FAN_OUT)
        fanout_id = json.loads(stored[1] or "{}")["fanout_id"]
        state = storage_call(store.fanout_state, fanout_id)
        if state is None:
            raise NoRetry(f"fan-out {fanout_id} of step #{key[2:]} is missing (purged?)")
        if state[0] is None:
            storage_call(store.suspend, ctx.owner, ctx.job.queue, "fanout")  # woken early (resumed by hand)
            raise Suspend(ctx.job.id)
        results = _results(ctx, fanout_id)
        if state[0] == "failed":
            n_ok = sum(1 for r in results if r.ok)
            # Name a sub-job that failed, before any that merely had not finished when fail-fast decided.
            failed = next((r for r in results if getattr(r.error, "status", None) == "failed"), None) or next(
                (r for r in results if not r.ok), None
            )
            first = f"; first failure: {failed.error}" if failed is not None else ""
            raise FanOutFailed(
                f"fan-out at step #{key[2:]} ({state[1]}) failed: {n_ok} of {len(results)} sub-jobs succeeded{first}",
                results,
            )
        return results
    if not subs:
        return []
    timeout_s = None if timeout is None else validate.seconds("fan-out timeout", to_seconds(timeout))
    fanout_id = "f" + uuid.uuid4().hex
    jobs = ctx.queue.new_jobs(subs, retries=retries, queue=queue, parent_id=ctx.job.id, fanout_id=fanout_id)
    if tracing.on:
        jobs = tracing.carry(jobs)  # the sub-jobs' runs join the parent's trace
    fan_row = (fanout_id, ctx.job.id, key, str(strategy), len(subs), timeout_s, int(cancel_on_parent_failure))
    storage_call(
        store.suspend, ctx.owner, ctx.job.queue, "fanout", None, None,
        (key, index, FAN_OUT, json.dumps({"fanout_id": fanout_id, "n": len(subs)})),
        ("job_waiting", codec.dumps({"fanout_id": fanout_id, "sub_jobs": len(subs)})), fan_row, jobs,
    )  # fmt: skip
    ctx.queue.emit(CheckpointSaved(job_id=ctx.job.id, call_index=index, name=FAN_OUT))
    raise Suspend(ctx.job.id)
