"""`queue.health()`: is this deployment doing its work? For `djobs health`, load balancers and probes.

Not ok when the database does not answer, when a queue with due jobs has no live worker serving it, or
when the oldest due job of a queue has waited longer than `max_lag`. A paused queue is not a problem (it
was paused on purpose) but is reported in words by `djobs why`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from djobs.errors import StorageUnavailable
from djobs.jobs import Health

if TYPE_CHECKING:
    from djobs.queue import Queue


def _span(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


def check(queue: Queue, max_lag: float, queues: list[str] | None = None) -> Health:
    try:
        queue.storage.ping()
        lag = queue.queue_lag()
        workers = queue.workers()
        paused = set(queue.paused_queues())
    except StorageUnavailable as exc:
        return Health(False, [f"the database does not answer: {exc}"])
    problems: list[str] = []
    served = {q for w in workers for q in w.queues}
    for name in sorted(lag):
        if queues is not None and name not in queues or name in paused:
            continue
        waited = lag[name]
        if name not in served:
            problems.append(f"queue {name!r} has due jobs (oldest waiting {_span(waited)}) but no live worker serves it.")
        elif waited > max_lag:
            problems.append(
                f"queue {name!r}: its oldest due job has waited {_span(waited)}, longer than the {_span(max_lag)} allowed."
            )
    return Health(not problems, problems)
