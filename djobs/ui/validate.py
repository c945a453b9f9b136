"""What the web API accepts: the library's own limits (`djobs.validate`), checked before anything is
written so that a request out of range is a 400 naming the field, and the database never holds a row that
a reader cannot show. The library checks again at its storage boundary, for every caller; the API adds
what only HTTP has: a body of at most 1 MiB, times as ISO-8601 text with their UTC offset, and bulk
requests of at most 500 ids.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from djobs import validate as lib

MAX_BODY = 1 << 20
MAX_NESTING = lib.MAX_DEPTH
MAX_NAME = lib.MAX_NAME
MAX_BULK = 500
INT32_MIN, INT32_MAX = lib.INT32_MIN, lib.INT32_MAX

ENQUEUE_FIELDS = frozenset({"type", "args", "queue", "priority", "delay", "unique", "retries", "at"})


class Invalid(ValueError):
    """A request field out of range; answered as 400 with this message."""


def _check(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return fn(*args, **kw)
    except (TypeError, ValueError) as exc:
        raise Invalid(str(exc)) from None


def name_problem(value: Any) -> str | None:
    """Why `value` cannot be a stored name (type, queue, unique key, id), or None: "must ..." words."""
    try:
        lib.name("", value)
    except (TypeError, ValueError) as exc:
        return str(exc).strip()
    return None


def text_problem(value: str) -> str | None:
    """Why free text (a pause or cancel reason) cannot be stored, or None."""
    try:
        lib.text("", value)
    except (TypeError, ValueError) as exc:
        return str(exc).strip()
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


def _name(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None or (value == "" and not required):
        if required:
            raise Invalid(f"{key} is required")
        return None
    return str(_check(lib.name, key, value))


def parse_time(text: Any, field: str = "at") -> datetime:
    """An ISO-8601 time with its UTC offset, within the library's years."""
    if not isinstance(text, str) or len(text) > 64:
        raise Invalid(f"{field} must be an ISO-8601 time string like 2030-01-02T03:04:05Z")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{field} must be an ISO-8601 time, got {text!r}") from None
    if when.tzinfo is None:
        raise Invalid(f"{field} needs a UTC offset (…Z or …+02:00), got {text!r}")
    _check(lib.when, field, when)
    return when


def parse_delay(value: Any) -> float:
    """Seconds from now, finite, >= 0, landing within the library's years."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Invalid("delay must be a number of seconds")
    delay = float(value) if abs(value) < 1e300 else float("inf")
    _check(lib.seconds, "delay", delay)
    _check(lib.epoch, "the time delay gives", time.time() + delay)
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
    for key, low in (("priority", INT32_MIN), ("retries", 0)):
        if body.get(key) is not None:
            if not isinstance(body[key], int) or isinstance(body[key], bool):
                raise Invalid(f"{key} must be an integer")
            opts[key] = _check(lib.int32, key, body[key], minimum=low)
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
    _check(lib.depth, "args", args)
    return job_type, args, opts


SIGNAL_FIELDS = frozenset({"name", "payload"})


def signal_request(body: Any) -> tuple[str, Any]:
    """(name, payload) for Queue.signal from a POST body; Invalid names the field at fault."""
    if not isinstance(body, dict):
        raise Invalid('the body must be a JSON object like {"name": "approved", "payload": {...}}')
    unknown = sorted(str(k)[:40] for k in set(body) - SIGNAL_FIELDS)
    if unknown:
        raise Invalid(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SIGNAL_FIELDS))}")
    name = _name(body, "name", required=True)
    assert name is not None
    payload = body.get("payload")
    _check(lib.depth, "payload", payload)
    return name, payload


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
            raise Invalid(f"id {str(job_id)[:40]!r}: {problem}")
    return list(dict.fromkeys(ids))
