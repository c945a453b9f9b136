"""The limits of what the web API accepts, the same the library enforces at its storage boundary.

Checked before anything is written, so a request out of range is a 400 and the database never holds a
row that a reader cannot show: priority and retries fit a signed 32-bit integer, times fall within years
1970..9999, names are 1..255 characters of printable text, args nest at most 100 deep, a body is at most
1 MiB. The library checks again (it is the boundary for every caller); the API checks first so that its
answer names the field.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_BODY = 1 << 20
MAX_NESTING = 100
MAX_NAME = 255
MAX_REASON = 1000
MAX_BULK = 500
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

ENQUEUE_FIELDS = frozenset({"type", "args", "queue", "priority", "delay", "unique", "retries", "at"})


class Invalid(ValueError):
    """A request field out of range; answered as 400 with this message."""


def name_problem(value: Any) -> str | None:
    """Why `value` cannot be a stored name (type, queue, unique key, id), or None."""
    if not isinstance(value, str):
        return "must be a string"
    if not 1 <= len(value) <= MAX_NAME:
        return f"must be 1 to {MAX_NAME} characters, got {len(value)}"
    if not value.isprintable():
        return "must be printable text (no control characters, no lone surrogates)"
    return None


def text_problem(value: str, max_len: int) -> str | None:
    """Why free text (a pause or cancel reason) cannot be stored, or None."""
    if len(value) > max_len:
        return f"must be at most {max_len} characters, got {len(value)}"
    if not value.isprintable():
        return "must be printable text (no control characters, no lone surrogates)"
    return None


def nesting(value: Any) -> int:
    """How deep lists and objects nest in a JSON value (a scalar: 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            items: Any = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            return depth
        stack.extend((child, depth) for child in items)
    return deepest


def unencodable(value: Any) -> str | None:
    """A message when a string (or object key) of a parsed JSON value cannot be encoded as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds a lone surrogate (\\ud800-\\udfff), which cannot be stored as text"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _int(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"{key} must be an integer")
    if not low <= value <= high:
        raise Invalid(f"{key} must be between {low} and {high}, got {value}")
    return value


def _name(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None or (value == "" and not required):
        if required:
            raise Invalid(f"{key} is required")
        return None
    problem = name_problem(value)
    if problem:
        raise Invalid(f"{key} {problem}")
    return str(value)


def parse_time(text: Any, field: str = "at") -> datetime:
    """An ISO-8601 time with its UTC offset, within 1970..9999."""
    if not isinstance(text, str) or len(text) > 64:
        raise Invalid(f"{field} must be an ISO-8601 time string like 2030-01-02T03:04:05Z")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{field} must be an ISO-8601 time, got {text!r}") from None
    if when.tzinfo is None:
        raise Invalid(f"{field} needs a UTC offset (…Z or …+02:00), got {text!r}")
    try:
        utc = when.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise Invalid(f"{field} must fall within 1970-01-01 and 9999-12-31 UTC, got {text!r}")
    return utc


def parse_delay(value: Any, now: datetime | None = None) -> float:
    """Seconds from now, finite, >= 0, and landing before the end of year 9999."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Invalid("delay must be a number of seconds")
    delay = float(value) if abs(value) < 1e300 else math.inf
    if not math.isfinite(delay) or delay < 0:
        raise Invalid(f"delay must be a finite number of seconds >= 0, got {value!r}")
    room = (LATEST - (now or datetime.now(UTC))).total_seconds()
    if delay > room:
        raise Invalid(f"delay {value!r} s lands after 9999-12-31 UTC")
    return delay


def enqueue_request(body: Any) -> tuple[str, Any, dict[str, Any]]:
    """(type, args, options for Queue.enqueue) from a POST body; Invalid names the field at fault."""
    if not isinstance(body, dict):
        raise Invalid('the body must be a JSON object like {"type": "send-email", "args": {...}}')
    unknown = sorted(str(k)[:40] for k in set(body) - ENQUEUE_FIELDS)
    if unknown:
        raise Invalid(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ENQUEUE_FIELDS))}")
    job_type = _name(body, "type", required=True)
    assert job_type is not None
    opts: dict[str, Any] = {}
    priority = _int(body, "priority", INT32_MIN, INT32_MAX)
    if priority is not None:
        opts["priority"] = priority
    retries = _int(body, "retries", 0, INT32_MAX)
    if retries is not None:
        opts["retries"] = retries
    if body.get("delay") is not None and body.get("at") is not None:
        raise Invalid("give delay or at, not both")
    if body.get("delay") is not None:
        opts["delay"] = timedelta(seconds=parse_delay(body["delay"]))
    if body.get("at") is not None:
        opts["at"] = parse_time(body["at"])
    for key in ("queue", "unique"):
        value = _name(body, key)
        if value is not None:
            opts[key] = value
    args = body.get("args")
    depth = nesting(args)
    if depth > MAX_NESTING:
        raise Invalid(f"args nest deeper than {MAX_NESTING} levels")
    return job_type, args, opts


def id_list(body: Any) -> list[str]:
    """The `ids` of a bulk request: 1..MAX_BULK job ids."""
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids:
        raise Invalid('the body must be {"ids": ["<job id>", ...]} with at least one id')
    if len(ids) > MAX_BULK:
        raise Invalid(f"at most {MAX_BULK} ids per request, got {len(ids)}")
    for job_id in ids:
        problem = name_problem(job_id)
        if problem:
            raise Invalid(f"id {str(job_id)[:40]!r} {problem}")
    return list(dict.fromkeys(ids))
