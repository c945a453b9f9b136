"""What a worker and storage say to each other about claims and their endings. No I/O here.

A dispatcher round sends storage the `Outcome`s of finished attempts and `ClaimRequest`s for free slots,
and gets back which outcomes still owned their job and the `Claim`s it won, in one transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from djobs.jobs import MAX_REFUNDS, Job  # noqa: F401 - MAX_REFUNDS is exported here too


class OutcomeKind(enum.StrEnum):
    COMPLETE = "complete"  # the handler returned: store the result
    FAIL = "fail"  # no retries left, or NoRetry: terminal
    RETRY = "retry"  # run again after a delay
    RELEASE = "release"  # give the job back untouched, attempt refunded (counted against MAX_REFUNDS)


@dataclass(frozen=True)
class Outcome:
    """The ending of one attempt, to be written guarded by ownership (job id, worker, attempt)."""

    kind: OutcomeKind
    job_id: str
    attempt: int
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    delay: float = 0.0
    #: The event-log row written with it, if it still owned the job: (kind, data JSON).
    event: tuple[str, str | None] | None = None
    queue: str | None = None


@dataclass(frozen=True)
class ClaimRequest:
    """Claim up to `limit` due jobs of `queue` among `types`. `held`: a prefetch, whose attempt is given
    back if the worker dies before it starts (its start is recorded in a later round)."""

    queue: str
    types: tuple[str, ...]
    limit: int
    held: bool = False
    #: The queue has fleet-wide limits: claimed under its row lock, within them.
    limited: bool = False


@dataclass(frozen=True)
class Claim:
    job: Job
    fanout_id: str | None
    request: int  # index of the ClaimRequest that won it
    trace: str | None = None  # the trace context stored with the job (tracing)


@dataclass(frozen=True)
class RoundResult:
    owned: list[bool]  # per outcome: written (this worker still owned the job)
    claims: list[Claim]
    #: Jobs that a release failed for good (MAX_REFUNDS reached), with their fan-out: decisions may be due.
    failed: list[tuple[str, str | None]]
    #: When asked and nothing was claimable: when the earliest job of the queues becomes due (epoch seconds).
    next_due: float | None = None
    #: When a limit held due jobs back: when it will let one start (epoch seconds; None: when one finishes).
    limit_retry: float | None = None
