"""Every exception a djobs user may catch, in one place.

Handlers steer retries with `NoRetry` and `RetryAfter`; callers of the Queue API get `UnknownJobType`,
`DuplicateJob`, `JobNotFound`, `JobFailedError`, `JobCancelledError`; infrastructure trouble surfaces as
`StorageUnavailable` (the CLI maps it to exit 75) and `ConfigError` (exit 78).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from djobs.jobs import Result


class DjobsError(Exception):
    """Base class of djobs's own errors."""


class NoRetry(DjobsError):  # noqa: N818 - the contract's name
    """Raise (or wrap an exception) to fail the job at once, whatever retries remain."""

    def __init__(self, reason: object = "") -> None:
        self.reason = reason
        super().__init__(str(reason))
        if isinstance(reason, BaseException):
            self.__cause__ = reason


class RetryAfter(DjobsError):  # noqa: N818 - the contract's name
    """Raise to retry at exactly now + delay (if retries remain), instead of the exponential backoff."""

    def __init__(self, delay: timedelta | float | int, reason: object = "") -> None:
        from djobs.retry import to_seconds

        self.delay = to_seconds(delay)
        self.reason = reason
        super().__init__(str(reason) if reason else f"retry after {self.delay:g}s")


class UnknownJobType(DjobsError, LookupError):  # noqa: N818
    """No handler is registered under that job type."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown job type {name!r}")


class DuplicateJob(DjobsError):  # noqa: N818
    """A non-terminal job already holds this unique key."""

    def __init__(self, key: str, existing_id: str | None) -> None:
        self.key = key
        self.existing_id = existing_id
        super().__init__(f"a job with unique key {key!r} is already active ({existing_id})")


class JobNotFound(DjobsError, LookupError):
    """No job has this id."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job {job_id!r}")


class JobFailedError(DjobsError):
    """The job ended `failed`; `.job` holds it and the message its last error."""

    def __init__(self, job: Any) -> None:
        self.job = job
        super().__init__(f"job {job.id} failed: {job.last_error}")


class JobCancelledError(DjobsError):
    """The job ended `cancelled`."""

    def __init__(self, job: Any) -> None:
        self.job = job
        super().__init__(f"job {job.id} was cancelled")


class DeterminismError(NoRetry):
    """A replayed durable call does not match the checkpoint stored at its index."""


class FanOutFailed(NoRetry):
    """A fan-out's strategy decided failure; `.results` holds every sub-job's Result."""

    def __init__(self, message: str, results: list[Result]) -> None:
        super().__init__(message)
        self.results = results


class NotPaused(DjobsError):  # noqa: N818
    """`wait_for_pause` was called on a worker that is not paused."""


class StorageUnavailable(DjobsError):
    """The database cannot be reached (or stays unreachable after the configured retries)."""


class StorageRefused(StorageUnavailable):
    """The database refused a statement for what it was asked to store (a value no column holds, a constraint
    or trigger of its own), not for being away: the same statement gets the same answer."""


class ConfigError(DjobsError, ValueError):
    """A djobs.toml problem; the message names the file, the table and the key."""


class JobTimeout(DjobsError, TimeoutError):  # noqa: N818 - the contract's name
    """An attempt ran past its time limit: recorded as that attempt's error and retried like any other
    while retries remain."""


class SignalTimeout(DjobsError, TimeoutError):  # noqa: N818 - the contract's name
    """`ctx.wait_for_signal(name, timeout=…)` waited the whole timeout and no signal came."""


class JobCancelled(DjobsError):  # noqa: N818
    """Raised inside a handler by `ctx.raise_if_cancelled()` once the job is cancelled or paused."""


def has_no_retry(exc: BaseException) -> bool:
    """True if `NoRetry` is anywhere in the exception's cause/context chain."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, NoRetry):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


#: A job's error keeps at most this much of the exception's message (the traceback keeps more).
MAX_MESSAGE = 3_000
#: A job's error names at most this many of the durable steps it failed in (their keys grow with the depth).
MAX_STEP_NOTES = 6


def storable(text: str) -> str:
    """Text a handler produced (an exception's message, a traceback) as any database column can hold it: a
    NUL (PostgreSQL refuses it in text) and a lone surrogate (not UTF-8) are written out as escapes. Names
    and reasons users give are refused instead (`djobs.validate`); this is for what djobs must record."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def safe_str(exc: BaseException) -> str:
    """str(exc), even for an exception whose __str__ raises (user code: it must not break recording it), as
    the database can store it."""
    try:
        return storable(str(exc))
    except Exception:
        return "<str() of the exception failed>"


def error_text(exc: BaseException) -> str:
    """The one-line text stored as a job's `last_error`, naming the durable step it came from (if any)."""
    msg = safe_str(exc)
    if len(msg) > MAX_MESSAGE:
        msg = msg[: MAX_MESSAGE - 1] + "…"
    name = type(exc).__name__
    text = f"{name}: {msg}" if msg else name
    steps = [n for n in getattr(exc, "__notes__", ()) if isinstance(n, str) and n.startswith("in durable step ")]
    if len(steps) > MAX_STEP_NOTES:  # deep nesting: the innermost steps say where, the outermost how it began
        keep = MAX_STEP_NOTES // 2
        steps = [*steps[:keep], f"{len(steps) - 2 * keep} more steps", *steps[-keep:]]
    if steps:
        text += f" ({', '.join(reversed(steps))})"
    return text


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class SubJobError(DjobsError):
    """The error carried by a fan-out Result whose sub-job failed, was cancelled or did not finish."""

    def __init__(self, job_id: str, status: str, error: str | None) -> None:
        self.job_id = job_id
        self.status = status
        self.error = error
        super().__init__(f"sub-job {job_id} {status}" + (f": {error}" if error else ""))


class OwnershipLost(BaseException):  # noqa: N818 - control flow, deliberately not an Exception
    """The job was taken from this worker (cancelled, paused, reclaimed): unwind, write nothing."""


class Suspend(BaseException):  # noqa: N818 - control flow, deliberately not an Exception
    """The handler's fan-out, sleep or signal wait is written and the job is waiting: unwind and free the
    worker slot."""


class StorageLost(BaseException):  # noqa: N818 - control flow, deliberately not an Exception
    """A durable operation made on the handler's behalf could not reach the database: unwind; the worker
    gives the job back (attempt refunded) instead of counting it as the handler's failure."""
