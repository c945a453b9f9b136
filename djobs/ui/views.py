"""How records look in the API's lists: job summaries with bounded previews of their args and error."""

from __future__ import annotations

from typing import Any

from djobs import codec

#: Characters of a job's args and error shown in lists (the detail view has them whole).
PREVIEW = 200


def preview(value: Any, limit: int = PREVIEW) -> str | None:
    """At most `limit` characters of a value's JSON (or of a text), ending in "…" when cut."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    else:
        try:
            text = codec.dumps(value)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)[: limit + 1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(job: Any) -> dict[str, Any]:
    """What a job list shows of a job: no args or result beyond a bounded preview."""
    return {
        "id": job.id,
        "type": job.type,
        "queue": job.queue,
        "status": job.status,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_retries": job.max_retries,
        "run_at": job.run_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "parent_id": job.parent_id,
        "key": getattr(job, "key", None),
        "wait_kind": getattr(job, "wait_kind", None),
        "wait_signal": getattr(job, "wait_signal", None),
        "unique_key": getattr(job, "unique_key", None),
        "args_preview": getattr(job, "args_preview", None) or preview(getattr(job, "args", None)),
        "error_preview": getattr(job, "error_preview", None) or preview(getattr(job, "last_error", None)),
    }
