"""The limits every value djobs stores must respect, identical on SQLite and PostgreSQL.

Checked once, where values enter storage, whichever door they came through (the library, the CLI, the web
API, a TOML file): an out-of-range value raises ValueError (or TypeError for a wrong type) and nothing is
written, so no row can exist that later breaks a reader, a listing or a worker.

- priority, retries: a signed 32-bit integer (retries >= 0);
- times (`at`, `run_at` after a delay): within years 1970..9999, UTC;
- names (job type, queue, key, unique key, signal, schedule): 1..255 characters of printable text;
- args, results, payloads and meta: JSON nesting at most 100 deep;
- signal payloads: at most 1 MB of JSON text (a signal is a message, not a data store).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_NAME = 255
MAX_DEPTH = 100
#: Characters of JSON text a signal's payload may take.
MAX_PAYLOAD = 1_000_000
#: 1970-01-01 and 9999-12-31T23:59:59 UTC, as epoch seconds.
MIN_EPOCH, MAX_EPOCH = 0.0, 253402300799.0


def int32(what: str, value: Any, minimum: int = INT32_MIN) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{what} must be an integer, got {value!r}")
    if not minimum <= value <= INT32_MAX:
        raise ValueError(f"{what} must be between {minimum} and {INT32_MAX}, got {value}")
    return value


_good_names: set[str] = set()


def name(what: str, value: Any) -> str:
    """A name: 1..255 characters, printable (no control characters, no lone surrogates, no NUL)."""
    if type(value) is str and value in _good_names:
        return value  # names repeat (job types, queues): checked once per process
    _check_name(what, value)
    if len(_good_names) < 10_000:
        _good_names.add(value)
    return value


def _check_name(what: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > MAX_NAME:
        raise ValueError(f"{what} must be at most {MAX_NAME} characters, got {len(value)}")
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        raise ValueError(f"{what} must be printable text; it contains {bad!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode text (it contains a lone surrogate)") from None


def optional_name(what: str, value: Any) -> str | None:
    return None if value is None else name(what, value)


def text(what: str, value: Any, limit: int = 10_000) -> str | None:
    """Free text (a pause reason): any characters but NUL and lone surrogates, bounded."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{what} must be at most {limit} characters")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode text (it contains a lone surrogate)") from None
    return value


def seconds(what: str, value: float, *, allow_negative: bool = False, maximum: float = MAX_EPOCH) -> float:
    """A finite duration in seconds."""
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number of seconds, got {value}")
    if value < 0 and not allow_negative:
        raise ValueError(f"{what} must not be negative, got {value}")
    if abs(value) > maximum:
        raise ValueError(f"{what} is out of range ({value:g} seconds)")
    return value


def epoch(what: str, value: float) -> float:
    """An absolute time within 1970..9999 UTC."""
    if not math.isfinite(value) or not MIN_EPOCH <= value <= MAX_EPOCH:
        raise ValueError(f"{what} must fall within years 1970..9999 UTC")
    return value


def when(what: str, dt: datetime) -> float:
    """A datetime (naive means UTC) as epoch seconds within 1970..9999, without overflowing on the way."""
    if not isinstance(dt, datetime):
        raise TypeError(f"{what} takes a datetime, got {type(dt).__name__}")
    try:
        aware = dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
        value = aware.timestamp()
    except (OverflowError, ValueError, OSError):
        raise ValueError(f"{what} must fall within years 1970..9999 UTC") from None
    return epoch(what, value)


def depth(what: str, value: Any, limit: int = MAX_DEPTH) -> None:
    """JSON nesting at most `limit` deep (iterative: a hostile value cannot exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if d > limit:
            raise ValueError(f"{what} must nest at most {limit} deep")
        stack.extend((c, d + 1) for c in children if isinstance(c, Mapping | list | tuple))


_JSON_TOKENS = re.compile(r'\\.|["\[\]{}]')


def json_depth(what: str, text_value: str, limit: int = MAX_DEPTH) -> None:
    """Nesting depth of JSON text, without decoding it: only quotes, escapes and brackets are visited."""
    if len(text_value) <= limit or text_value.count("[") + text_value.count("{") <= limit:
        return  # too few characters, or too few brackets, to nest past the limit
    level = 0
    in_string = False
    for m in _JSON_TOKENS.finditer(text_value):
        ch = m.group()
        if ch == '"':
            in_string = not in_string
        elif in_string or len(ch) == 2:
            continue
        elif ch in "[{":
            level += 1
            if level > limit:
                raise ValueError(f"{what} must nest at most {limit} deep")
        else:
            level -= 1


def json_depths(what: str, texts: Any, limit: int = MAX_DEPTH) -> None:
    """`json_depth` of each text of a batch, without a call for the texts too short, or with too few brackets,
    to nest past the limit (nearly all; `str.count` parses its arguments, so a short text is not counted)."""
    for t in texts:
        if len(t) > limit and t.count("[") + t.count("{") > limit:
            json_depth(what, t, limit)


def new_job(job: Any) -> None:
    """Every field of a `NewJob` within its limits (ValueError/TypeError, before anything is written)."""
    name("job type", job.type)
    name("queue name", job.queue)
    int32("priority", job.priority)
    int32("retries", job.max_retries, minimum=0)
    optional_name("unique key", job.unique_key)
    optional_name("key", job.key)
    if job.at is not None:
        epoch("at", job.at)
    seconds("delay", job.delay, allow_negative=True)
    if job.at is None:
        epoch("the time delay= gives", time.time() + job.delay)
    if job.unique_for is not None:
        seconds("unique_for", job.unique_for)
    if job.timeout is not None:
        seconds("timeout", job.timeout)
        if job.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {job.timeout}")
    json_depth("args", job.args_json)
    if job.meta_json is not None:
        json_depth("meta", job.meta_json)


#: The `NewJob` fields a batch's jobs usually share: type, queue, priority, retries, at, delay, timeout, key,
#: meta, unique_for.
_SHARED = (1, 2, 4, 5, 6, 7, 12, 13, 14, 15)


def new_jobs(jobs: list[Any], columns: list[tuple[Any, ...]] | None = None) -> None:
    """`new_job` for each job of a batch. Options are checked once per run of jobs that share them; a batch
    made from one set of options (the usual `enqueue_many`) is read column by column (`columns`, the jobs'
    fields transposed, when the caller has them already): the shared options are checked once, and only each
    job's own fields (args, unique key) job by job."""
    n = len(jobs)
    if n > 1:
        cols = columns if columns is not None else list(zip(*jobs, strict=True))
        # `count` compares with ==, so True and 1 (or 1.0) look alike: the integer columns' types must agree too.
        if (all(cols[i].count(cols[i][0]) == n for i in _SHARED)
                and len(set(map(type, cols[4]))) == 1 and len(set(map(type, cols[5]))) == 1):  # fmt: skip
            new_job(jobs[0])
            if cols[8].count(None) != n:
                for key in cols[8]:
                    optional_name("unique key", key)
            json_depths("args", cols[3])
            return
    checked = None
    for job in jobs:
        # type, queue, priority, retries, at, delay, timeout, key, meta, unique_for (and True is no priority)
        same = (*job[1:3], *job[4:8], *job[12:16], type(job.priority), type(job.max_retries))
        if same != checked:
            new_job(job)
            checked = same
        else:
            optional_name("unique key", job.unique_key)
            json_depth("args", job.args_json)


def payload(what: str, text_value: str) -> str:
    """A signal's payload as JSON text: bounded in size and nesting."""
    if len(text_value) > MAX_PAYLOAD:
        raise ValueError(f"{what} must be at most {MAX_PAYLOAD} characters of JSON, got {len(text_value)}")
    json_depth(what, text_value)
    return text_value
