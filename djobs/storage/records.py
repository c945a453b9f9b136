"""Rows become domain records here, and only here.

A reader must never fail on a row already stored: a row written by an older djobs, edited by hand, or
holding a value another version accepted shows as such (a JSON value that does not decode is kept as its
text, a time out of range as None, an unknown status as PENDING with the raw text in `last_error`), never
breaks a listing.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from djobs import validate
from djobs.jobs import Job, JobStatus
from djobs.retry import Backoff
from djobs.storage.dialect import COL, WAIT_FOREVER

if TYPE_CHECKING:
    from djobs.info import Checkpoint, JobSummary, StoredEvent

_STATUSES = {s.value: s for s in JobStatus}
_fromtimestamp = datetime.fromtimestamp
_EPOCH = datetime.fromtimestamp(0, UTC)


def when(ts: Any) -> datetime | None:
    """Stored epoch seconds to an aware UTC datetime; None for None or anything out of range."""
    if type(ts) is float and 0.0 <= ts < WAIT_FOREVER:  # what every row djobs wrote holds (NaN fails both)
        return _fromtimestamp(ts, UTC)
    if ts is None:
        return None
    try:
        value = float(ts)
        if not math.isfinite(value) or value >= WAIT_FOREVER:
            return None
        return datetime.fromtimestamp(value, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def json_value(text: Any) -> Any:
    """Decoded JSON, or the raw text when it does not decode or nests deeper than djobs stores (a value
    hundreds deep decodes here and then breaks whatever walks it: a renderer, the JSON output). Never raises."""
    if text is None or text == "null":
        return None
    if text == "{}":  # the args of most jobs: no parse (a new dict each time: the caller may change it)
        return {}
    try:
        validate.json_depth("value", text)
        return json.loads(text)
    except (ValueError, TypeError, AttributeError, RecursionError):
        return text


def _status(text: Any) -> JobStatus:
    return _STATUSES.get(text, JobStatus.PENDING)


def _int(value: Any, default: int = 0) -> int:
    if type(value) is int:
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _backoff(text: Any) -> Backoff | None:
    data = json_value(text)
    if not isinstance(data, dict):
        return None
    try:
        return Backoff.from_json(data)
    except (TypeError, ValueError):
        return None


_new = object.__new__


def _record(cls: type[Any], **values: Any) -> Any:
    """A frozen record from values already normalised here, without its generated `__init__`: a claimed job
    is built once per run, and a 31-field frozen `__init__` (one `object.__setattr__` per field) cost more
    than all the conversions above together. Every field must be given."""
    obj = _new(cls)
    obj.__dict__.update(values)
    return obj


def job(row: Any) -> Job:
    """A full job row (`{cols}` in `dialect.JOB_COLS` order) as a Job."""
    g = row.__getitem__
    status_text = g(COL["status"])
    progress = json_value(g(COL["progress"]))
    meta = json_value(g(COL["meta"]))
    last_error = g(COL["last_error"])
    if status_text not in _STATUSES:
        last_error = f"(unknown status {status_text!r} in the database) {last_error or ''}".strip()
    return _record(
        Job,
        id=g(0),
        type=g(1),
        queue=g(2),
        args=json_value(g(3)),
        priority=_int(g(4)),
        status=_status(status_text),
        attempt=_int(g(6)),
        max_retries=_int(g(7)),
        last_error=last_error,
        result=json_value(g(9)),
        run_at=when(g(10)),
        started_at=when(g(11)),
        completed_at=when(g(12)),
        created_at=when(g(13)) or _EPOCH,
        updated_at=when(g(14)) or _EPOCH,
        last_heartbeat_at=when(g(15)),
        locked_by=g(16),
        unique_key=g(17),
        parent_id=g(18),
        paused_at=when(g(COL["paused_at"])),
        pause_reason=g(COL["pause_reason"]),
        progress=progress if isinstance(progress, dict) else None,
        timeout=g(COL["timeout"]),
        key=g(COL["job_key"]),
        meta=meta if isinstance(meta, dict) else None,
        last_traceback=g(COL["last_traceback"]),
        refunds=_int(g(COL["refunds"])),
        wait_kind=g(COL["wait_kind"]),
        wait_signal=g(COL["wait_signal"]),
        unique_until=when(g(COL["unique_until"])),
        backoff=_backoff(g(COL["backoff"])),
    )


#: Columns of a summary row, in this order.
SUMMARY_COLS = (
    "id, type, queue, status, priority, attempt, max_retries, run_at, created_at, updated_at, started_at, "
    "completed_at, parent_id, job_key, wait_kind, wait_signal"
)


def summary(row: Any, args_preview: Any, error_preview: Any, preview: int) -> JobSummary:
    from djobs.info import JobSummary

    def cut(value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        return text if len(text) <= preview else text[: max(0, preview - 1)] + "…"

    return JobSummary(
        id=row[0], type=row[1], queue=row[2], status=_status(row[3]), priority=_int(row[4]), attempt=_int(row[5]),
        max_retries=_int(row[6]), run_at=when(row[7]), created_at=when(row[8]) or datetime.fromtimestamp(0, UTC),
        updated_at=when(row[9]) or datetime.fromtimestamp(0, UTC), started_at=when(row[10]),
        completed_at=when(row[11]), parent_id=row[12], key=row[13], wait_kind=row[14], wait_signal=row[15],
        args_preview=cut(args_preview) or "null",
        error_preview=cut(error_preview.splitlines()[0] if isinstance(error_preview, str) and error_preview else None),
    )  # fmt: skip


def event(r: Any) -> StoredEvent:
    from djobs.info import StoredEvent

    data = json_value(r[6])
    return StoredEvent(
        int(r[0]), when(r[1]) or datetime.fromtimestamp(0, UTC), r[2], r[3], r[4], r[5],
        {} if data is None else data,
    )  # fmt: skip


def checkpoint(r: Any) -> Checkpoint:
    from djobs.info import Checkpoint

    return Checkpoint(r[0], r[1], r[2], json_value(r[3]), r[4], when(r[5]))
