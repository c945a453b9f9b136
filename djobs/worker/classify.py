"""How a handler's ending becomes an outcome: completed, retried, failed, released, or nothing to write.

Errors are classified by where they come from. Anything the handler raises is that job's failure,
whatever its class — a `peewee.OperationalError` of the handler's own database, a `JobCancelled` it raised
itself, even `SystemExit`. Only djobs's own durable writes failing (`StorageLost`) and the worker taking the
job back (cancel, pause, stop: the claim's cancel flag is set) give the attempt back; and those refunds are
bounded (`outcomes.MAX_REFUNDS`) so nothing loops.
"""

from __future__ import annotations

import asyncio
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from djobs import codec, validate
from djobs.errors import (
    JobCancelled,
    JobTimeout,
    OwnershipLost,
    RetryAfter,
    StorageLost,
    StorageRefused,
    Suspend,
    error_text,
    has_no_retry,
    safe_str,
    storable,
)
from djobs.outcomes import Outcome, OutcomeKind
from djobs.registry import encode_args
from djobs.retry import MAX_DELAY, job_backoff

if TYPE_CHECKING:
    from djobs.jobs import Job
    from djobs.registry import Handler

#: A stored traceback keeps at most this many characters (its last ones: where it failed).
MAX_TRACEBACK = 32_000
#: A stored error message keeps at most this many characters (its first ones); the traceback has the rest.
MAX_ERROR = 4_000


@dataclass
class Ended:
    """A claim's ending, on its way to the dispatcher. `outcome` None: nothing to write (the job waits,
    or is no longer ours)."""

    outcome: Outcome | None
    label: str  # completed | failed | retried | released | waiting | dropped
    exc: BaseException | None = None
    value: Any = None
    finished: float = field(default_factory=time.monotonic)
    entry: Any = None
    accounted: bool = False  # its duration was averaged into the prefetch estimate


def traceback_text(exc: BaseException) -> str:
    text = storable("".join(traceback.format_exception(exc)))
    return text if len(text) <= MAX_TRACEBACK else "…" + text[-MAX_TRACEBACK:]


def _failure(job: Job, handler: Handler, exc: BaseException, error: str) -> tuple[OutcomeKind, float]:
    """Retry (with its delay) or fail, for an error the job is to blame for."""
    if has_no_retry(exc) or job.attempt > job.max_retries:
        return OutcomeKind.FAIL, 0.0
    if isinstance(exc, RetryAfter):
        return OutcomeKind.RETRY, exc.delay
    return OutcomeKind.RETRY, job_backoff(job.attempt, job.backoff or handler.options.backoff)


def retry_after_problem(delay: float) -> str | None:
    """Why a RetryAfter delay cannot be honoured (non-finite, negative, or past any storable time)."""
    if not math.isfinite(delay):
        return f"RetryAfter needs a finite delay, got {delay}"
    if delay < 0:
        return f"RetryAfter needs a delay >= 0, got {delay:g}"
    if delay > MAX_DELAY or time.time() + delay > validate.MAX_EPOCH:
        return f"RetryAfter delay of {delay:g}s is too long (at most {MAX_DELAY:.0f}s)"
    return None


def classify(
    job: Job,
    handler: Handler,
    value: Any,
    exc: BaseException | None,
    bad_args: bool,
    cancelled: bool,
    worker_id: str,
    release: bool = False,
) -> Ended:
    def out(kind: OutcomeKind, label: str, **kw: Any) -> Ended:
        return Ended(Outcome(kind, job.id, job.attempt, queue=job.queue, **kw), label, exc=exc, value=value)

    if release:
        return out(OutcomeKind.RELEASE, "released")
    if exc is None:
        try:
            text = encode_args(value, "it")
        except (TypeError, ValueError, RecursionError) as e:
            err = f"the result cannot be stored: {safe_str(e)}"
            return _ended_failure(job, handler, TypeError(err), err, out, terminal=True)
        return Ended(
            Outcome(OutcomeKind.COMPLETE, job.id, job.attempt, result_json=text, queue=job.queue, event=("job_completed", None)),
            "completed", value=None if text == "null" else codec.loads(text),
        )  # fmt: skip
    if isinstance(exc, Suspend):
        return Ended(None, "waiting", exc=exc)
    if isinstance(exc, OwnershipLost):
        return Ended(None, "dropped", exc=exc)
    if isinstance(exc, StorageLost):
        return out(OutcomeKind.RELEASE, "released")
    if isinstance(exc, JobTimeout):
        return _ended_failure(job, handler, exc, error_text(exc), out)
    if cancelled and isinstance(exc, JobCancelled | asyncio.CancelledError):
        # We asked it to stop (cancel, pause, stop). Usually the job is no longer ours and this guarded write
        # matches nothing; if it still is ours, it goes back to pending, its attempt refunded.
        return out(OutcomeKind.RELEASE, "released")
    if bad_args:
        return _ended_failure(job, handler, exc, f"args do not fit the handler: {error_text(exc)}", out, terminal=True)
    if isinstance(exc, RetryAfter) and not has_no_retry(exc):
        problem = retry_after_problem(exc.delay)
        if problem is not None:
            return _ended_failure(job, handler, exc, problem, out, terminal=True)
    return _ended_failure(job, handler, exc, error_text(exc), out)


def unrecorded(e: Ended, problem: str) -> None:
    """Turn an ending the database refused to store (alone, so for what it holds: a value no column takes,
    a constraint or trigger of the database's own) into a failure for good that names the problem, which
    it can store: the job ends and the worker's rounds go on, instead of retrying the refused write forever."""
    assert e.outcome is not None
    o = e.outcome
    error = storable(f"djobs could not record this attempt's outcome ({e.label}): {problem}")[:MAX_ERROR]
    e.outcome = Outcome(OutcomeKind.FAIL, o.job_id, o.attempt, queue=o.queue, error=error,
                        event=("job_failed", codec.dumps({"error": error})))  # fmt: skip
    e.label = "failed"
    e.exc = StorageRefused(error)


def _ended_failure(job: Job, handler: Handler, exc: BaseException, error: str, out: Any, terminal: bool = False) -> Ended:
    if len(error) > MAX_ERROR:
        error = error[: MAX_ERROR - 1] + "…"
    kind, delay = (OutcomeKind.FAIL, 0.0) if terminal else _failure(job, handler, exc, error)
    tb = traceback_text(exc)
    if kind is OutcomeKind.FAIL:
        return out(kind, "failed", error=error, traceback=tb, event=("job_failed", codec.dumps({"error": error})))
    data = codec.dumps({"error": error, "attempt": job.attempt, "delay": delay})
    return out(kind, "retried", error=error, traceback=tb, delay=delay, event=("job_retrying", data))
