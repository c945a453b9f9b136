"""Why is a job not running? `why(queue, job_id)` answers in words, for `djobs why` and the TUI.

Usage::

    from djobs.explain import why
    for reason in why(queue, job_id):
        print("-", reason)

Each reason is one sentence. The checks, in order: finished jobs; paused job; sleeping, waiting for a signal
or on sub-jobs; due in the future (scheduled or backing off after a failed attempt); paused queue; no live
worker serving the queue; no live worker with a handler for the type; every serving worker paused. A running job says which
worker runs it and since when. A job that should be claimed now says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from djobs.queue import Queue

_FINISHED = {"completed", "failed", "cancelled"}


def _status(job: Any) -> str:
    status = job.status
    return str(getattr(status, "value", status))


def relative(t: datetime, now: datetime | None = None) -> str:
    """`in 10m` or `3s ago` (also used by the CLI tables)."""
    delta = (t - (now or datetime.now(UTC))).total_seconds()
    return f"in {span(delta)}" if delta > 0 else f"{span(-delta)} ago"


def when(t: datetime | None, now: datetime | None = None) -> str:
    """`2026-11-29 10:31:02 UTC (3m ago)`; "an unknown time" for None."""
    if t is None:
        return "an unknown time"
    return f"{t.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S UTC')} ({relative(t, now)})"


def span(seconds: float) -> str:
    """A short human duration: `45s`, `12m`, `3.5h`, `2.0d` (also used by the CLI tables)."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _reason_suffix(reason: str | None) -> str:
    return f": {reason}" if reason else ""


STALE_AFTER = 30.0  # seconds: the workers' default stale age


def why(queue: Queue, job_id: str, now: datetime | None = None, stale_after: float = STALE_AFTER) -> list[str]:
    """The reasons the job is not running (or what it is doing), one sentence each.

    `stale_after` is the workers' stale age (`[worker] stale_after`): how long a running job's worker may
    be silent before another worker returns the job to pending. Raises `djobs.JobNotFound` for an unknown id.
    """
    import djobs

    job = queue.get_job(job_id)
    if job is None:
        raise djobs.JobNotFound(job_id)
    now = now or datetime.now(UTC)
    status = _status(job)
    reasons: list[str] = []

    if status in _FINISHED:
        finished = when(job.completed_at or job.updated_at, now)
        text = f"the job is {status} (since {finished}); it will not run again"
        if status == "failed" and job.last_error:
            text += f"; last error: {_one_line(job.last_error)}"
        if status in ("failed", "cancelled"):
            text += " unless retried (djobs retry ID)"
        return [text]

    live = queue.workers()
    if status == "running":
        worker_id = getattr(job, "locked_by", None) or getattr(job, "worker_id", None)
        worker = next((w for w in live if w.id == worker_id), None)
        where = f"worker {worker_id}" if worker_id else "a worker"
        if worker is not None:
            where += f" on {worker.host} (pid {worker.pid})"
        text = f"the job is running on {where} since {when(job.started_at, now)}, attempt {job.attempt}"
        reasons.append(text)
        beat = job.last_heartbeat_at or job.started_at
        if job.last_heartbeat_at is not None:
            reasons.append(f"its last heartbeat was {relative(job.last_heartbeat_at, now)}")
        if beat is not None:
            recover_at = beat + timedelta(seconds=stale_after)
            if worker_id and worker is None:
                reasons.append(
                    f"worker {worker_id} is not alive: any live worker returns the job to pending once it has "
                    f"been silent for the stale age ({span(stale_after)}), "
                    + ("now" if recover_at <= now else f"at {when(recover_at, now)}")
                )
            else:
                reasons.append(
                    f"if its worker has died (kill -9, a lost machine), any live worker returns the job to "
                    f"pending once its heartbeat is as old as the stale age ({span(stale_after)}): at {when(recover_at, now)}"
                )
        if worker is not None and worker.paused:
            reasons.append(f"its worker is paused ({_mode(worker)}){_reason_suffix(worker.pause_reason)}")
        return reasons

    if status == "paused":
        reasons.append(f"the job is paused{_reason_suffix(getattr(job, 'pause_reason', None))}; resume it with "
                       "djobs resume job ID")  # fmt: skip

    if status in ("waiting", "paused") and job.wait_kind in ("sleep", "signal"):
        reasons.append(_durable_wait(queue, job, now))
    elif status == "waiting":
        subs = queue.sub_jobs(job_id)
        done = sum(1 for s in subs if _status(s) in _FINISHED)
        if subs:
            reasons.append(f"the job is waiting on {len(subs) - done} of {len(subs)} sub-jobs")
        else:
            reasons.append("the job is waiting on its sub-jobs")

    due = job.run_at
    if status in ("pending", "retrying") and due is not None and due > now:
        if job.attempt > 0 and (job.last_error or status == "retrying"):
            error = f": {_one_line(job.last_error)}" if job.last_error else ""
            reasons.append(f"it is backing off until {when(due, now)} after attempt {job.attempt}{error}")
        else:
            reasons.append(f"it is due at {when(due, now)}")

    stats = {s.name: s for s in queue.queue_stats()}
    qs = stats.get(job.queue)
    if qs is not None and qs.paused:
        reasons.append(f"queue {job.queue!r} is paused{_reason_suffix(qs.pause_reason)}")

    serving = [w for w in live if job.queue in w.queues]
    if not serving:
        reasons.append(f"no live worker serves queue {job.queue!r}")
    else:
        handling = [w for w in serving if job.type in w.handlers]  # each worker records its job types
        if not handling:
            reasons.append(
                f"no live worker serving queue {job.queue!r} has a handler for job type {job.type!r}"
            )
        elif all(w.paused for w in handling):
            ids = ", ".join(w.id for w in handling)
            reasons.append(f"every worker that could run it is paused ({ids})")

    if status in ("pending", "retrying") and (due is None or due <= now):
        reasons.extend(queue.limit_reasons(job))
    if not reasons and status in ("pending", "retrying"):
        reasons.append(f"nothing holds it back: the next free worker on queue {job.queue!r} will claim it")
    return reasons


def _durable_wait(queue: Queue, job: Any, now: datetime) -> str:
    """A sleep says until when; a signal wait names its signal, how many of it are sent and not yet
    consumed (more than 0: the job is due and the next free worker takes it), and its timeout, if any."""
    from djobs.validate import MAX_EPOCH

    if job.wait_kind == "sleep":
        return f"the job is sleeping until {when(job.run_at, now)}"
    sent = queue.pending_signals(job.id, job.wait_signal)
    text = f"the job is waiting for signal {job.wait_signal!r} (sent: {sent})"
    if job.run_at is not None and job.run_at.timestamp() < MAX_EPOCH and sent == 0:
        text += f"; the wait times out at {when(job.run_at, now)}"
    return text


def _mode(worker: Any) -> str:
    mode = worker.pause_mode
    return str(getattr(mode, "value", mode) or "graceful")


def _one_line(text: str) -> str:
    first = text.strip().splitlines()
    line = first[-1] if first else ""
    return line if len(line) <= 200 else line[:197] + "..."
