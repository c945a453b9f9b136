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
from djobs.storage.dialect import JOB_COLS, WAIT_FOREVER

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
_set = object.__setattr__
_N_COLS = len(JOB_COLS)


def job(row: Any) -> Job:
    """A full job row (`{cols}` in `dialect.JOB_COLS` order, extra columns after them ignored) as a Job. The
    unpacking below names the columns in that order (`test_a_job_row_becomes_each_field_from_its_own_column`).

    The dispatcher builds one per claimed job, so this is written for speed: the row unpacked at once, the
    usual values (ints, floats, NULLs) taken as they are and only the others through the normalisers, the
    record's `__dict__` set whole. It was a third of a PostgreSQL dispatcher's own time per job."""
    (id_, type_, queue, args, priority, status_text, attempt, max_retries, last_error, result, run_at, started_at,
     completed_at, created_at, updated_at, heartbeat, locked_by, unique_key, parent_id, _fanout_id, _fanout_pos,
     _paused_from, paused_at, pause_reason, _pause_requested, progress, timeout, job_key, meta, last_traceback,
     refunds, wait_kind, wait_signal, unique_until, backoff, _trace) = row[:_N_COLS]  # fmt: skip
    status = _STATUSES.get(status_text)
    if status is None:
        status = JobStatus.PENDING
        last_error = f"(unknown status {status_text!r} in the database) {last_error or ''}".strip()
    progress = None if progress is None else json_value(progress)
    meta = None if meta is None else json_value(meta)
    obj = _new(Job)
    _set(obj, "__dict__", {
        "id": id_, "type": type_, "queue": queue, "args": json_value(args),
        "priority": priority if type(priority) is int else _int(priority), "status": status,
        "attempt": attempt if type(attempt) is int else _int(attempt),
        "max_retries": max_retries if type(max_retries) is int else _int(max_retries),
        "last_error": last_error, "result": None if result is None else json_value(result),
        "run_at": when(run_at), "started_at": when(started_at),
        "completed_at": None if completed_at is None else when(completed_at),
        "created_at": when(created_at) or _EPOCH, "updated_at": when(updated_at) or _EPOCH,
        "last_heartbeat_at": when(heartbeat), "locked_by": locked_by, "unique_key": unique_key,
        "parent_id": parent_id, "paused_at": None if paused_at is None else when(paused_at),
        "pause_reason": pause_reason, "progress": progress if isinstance(progress, dict) else None,
        "timeout": timeout, "key": job_key, "meta": meta if isinstance(meta, dict) else None,
        "last_traceback": last_traceback, "refunds": refunds if type(refunds) is int else _int(refunds),
        "wait_kind": wait_kind, "wait_signal": wait_signal,
        "unique_until": None if unique_until is None else when(unique_until),
        "backoff": None if backoff is None else _backoff(backoff),
    })  # fmt: skip
    return obj


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
