"""Durable time and signals: steps that wait without holding a worker.

A sleep's checkpoint holds its wake-up time in the database's clock; the job waits (`waiting`, its `run_at`
that time) and the claim takes it back once due, so it never wakes early and a replay past that time
returns at once. A signal step's checkpoint holds the payload it consumed (or that a check found none, or
that the wait timed out), written with the signal's consumption in one transaction; while it waits, the
checkpoint holds its deadline so restarts keep the timeout the first wait set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from djobs import codec, validate
from djobs.context import Context
from djobs.durable.steps import check_name, storage_call
from djobs.errors import DeterminismError, NoRetry, SignalTimeout, Suspend
from djobs.event_types import CheckpointSaved, JobSleeping, JobWaitingSignal, SignalReceived
from djobs.retry import to_seconds

SLEEP = "sleep"
WAIT = "wait_for_signal"
CHECK = "check_signal"


def _stored(ctx: Context, key: str, step: str) -> dict[str, Any] | None:
    stored = ctx.replay_state().rows.get(key)
    if stored is None:
        return None
    check_name(key, stored[0], step)
    value = codec.loads(stored[1] or "{}")
    return value if isinstance(value, dict) else {}


def _remember(ctx: Context, key: str, index: int, step: str, value: str) -> None:
    ctx.replay_state().rows[key] = (step, value, None)
    ctx.queue.emit(CheckpointSaved(job_id=ctx.job.id, call_index=index, name=step))


def _at(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def sleep(ctx: Context, duration: timedelta | float | None = None, until: datetime | None = None) -> None:
    """Wait until `until`, or for `duration` from the first time this step is reached."""
    seconds = None if until is not None else validate.seconds("sleep duration", to_seconds(duration))
    until_s = None if until is None else validate.when("sleep_until", until)
    key, index = ctx.next_step()
    store = ctx.queue.storage
    stored = _stored(ctx, key, SLEEP)
    if stored is not None:
        wake = float(stored.get("until", 0.0))
        started = ctx.job.started_at
        if started is not None and started.timestamp() >= wake:
            return
        if storage_call(store.db_now) >= wake:
            return
        # Back before its time (a cancelled sleeper retried by hand): sleep the rest.
        event = ("job_sleeping", codec.dumps({"until": wake, "call_index": index}))
        storage_call(store.suspend, ctx.owner, ctx.job.queue, "sleep", wake, None, None, event)
        ctx.queue.emit(JobSleeping(job_id=ctx.job.id, until=_at(wake)))
        raise Suspend(ctx.job.id)
    wake, parked = storage_call(store.sleep_step, ctx.owner, ctx.job.queue, key, index, seconds, until_s)
    _remember(ctx, key, index, SLEEP, codec.dumps({"until": wake}))
    if parked:
        ctx.queue.emit(JobSleeping(job_id=ctx.job.id, until=_at(wake)))
        raise Suspend(ctx.job.id)


def _same_signal(key: str, value: dict[str, Any], name: str) -> None:
    if value.get("signal") != name:
        raise DeterminismError(
            f"determinism violation at durable call #{key[2:]}: the checkpoint waited for signal "
            f"{value.get('signal')!r} but the handler now waits for {name!r}"
        )


def _timed_out(key: str, name: str) -> SignalTimeout:
    return SignalTimeout(f"no signal {name!r} arrived before the timeout of durable step #{key[2:]}")


def _signal_step(ctx: Context, step: str, name: str, wait: bool, timeout: Any) -> tuple[Any, bool]:
    validate.name("signal name", name)
    timeout_s = None if timeout is None else validate.seconds("signal timeout", to_seconds(timeout))
    key, index = ctx.next_step()
    stored = _stored(ctx, key, step)
    deadline = None
    if stored is not None:
        _same_signal(key, stored, name)
        if "payload" in stored:
            return stored["payload"], True
        if stored.get("found") is False:
            return None, False
        if stored.get("timed_out"):
            # Checkpointed: a retry would time out the same way, so the job's attempts are not spent on it.
            raise _timed_out(key, name) from NoRetry("the wait is over")
        deadline = stored.get("deadline")
        timeout_s = None
    store = ctx.queue.storage
    state, value = storage_call(
        store.take_signal, ctx.owner, ctx.job.queue, key, index, step, name, wait, timeout_s, deadline
    )
    if state == "waiting":
        ctx.replay_state().rows[key] = (step, value, None)
        ctx.queue.emit(JobWaitingSignal(job_id=ctx.job.id, signal=name, deadline=_at(codec.loads(value)["deadline"])))
        raise Suspend(ctx.job.id)
    _remember(ctx, key, index, step, value)
    if state == "timeout":
        raise _timed_out(key, name) from NoRetry("the wait is over")
    if state == "none":
        return None, False
    ctx.queue.emit(SignalReceived(job_id=ctx.job.id, signal=name))
    return codec.loads(value)["payload"], True


def wait_for_signal(ctx: Context, name: str, timeout: timedelta | float | None = None) -> Any:
    """The payload of the oldest unconsumed signal `name`, waiting (durably) for one to be sent."""
    return _signal_step(ctx, WAIT, name, True, timeout)[0]


def check_signal(ctx: Context, name: str) -> tuple[Any, bool]:
    """(payload, True) for the oldest unconsumed signal `name`, consumed; (None, False) when none is there."""
    return _signal_step(ctx, CHECK, name, False, None)
