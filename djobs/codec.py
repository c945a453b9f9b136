"""JSON in and out of the database, and decoding args into a handler's annotated type.

Args and results are stored as JSON text. Encoding happens before anything is written, so args that do not
encode raise TypeError and nothing is stored. Dataclasses encode as their fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import typing
from collections import deque
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any


def _default(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Enum):
        return o.value
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


# One encoder for every call: json.dumps with options builds a new JSONEncoder each time.
_encode = json.JSONEncoder(default=_default, separators=(",", ":"), allow_nan=False).encode
# And its C half, made once per thread: `JSONEncoder.encode` builds one on every call, which costs more than
# encoding a small document (0.60 -> 0.20 µs for `{}`). `markers` is the circular-reference check's memory; a
# thread's encoder is not re-entered (`_default` never encodes), and a failed call leaves its markers behind, so
# they are cleared then.
_make_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_threads = threading.local()


def _c_encoder() -> tuple[Any, dict[int, Any]] | None:
    try:
        return _threads.encoder  # type: ignore[no-any-return]
    except AttributeError:
        pass
    markers: dict[int, Any] = {}
    try:
        made = (_make_c_encoder(markers, _default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False,
                                False), markers)  # fmt: skip
    except TypeError:  # another interpreter's C encoder, or none: the Python path serves
        made = None
    _threads.encoder = made
    return made


def dumps_many(values: list[Any]) -> list[str]:
    """`dumps` of each value of a batch, the thread's C encoder looked up once for all of them (0.47 -> 0.25 µs
    a `{}`). When one value fails, the batch is encoded again by `dumps`, which raises that value's error."""
    c = _c_encoder() if _make_c_encoder is not None else None
    if c is None or c[1]:
        return [dumps(v) for v in values]
    encode, join = c[0], "".join
    try:
        return [join(encode(v, 0)) for v in values]
    except BaseException as exc:
        c[1].clear()
        if not isinstance(exc, Exception):
            raise
    return [dumps(v) for v in values]


def dumps(value: Any) -> str:
    """Encode to compact JSON; raises TypeError for values JSON cannot hold."""
    if value is None:
        return "null"
    c = _c_encoder() if _make_c_encoder is not None else None
    try:
        if c is None or c[1]:
            return _encode(value)
        try:
            return "".join(c[0](value, 0))
        except BaseException:
            c[1].clear()
            raise
    except ValueError as exc:  # NaN/inf, a circular reference
        raise TypeError(str(exc)) from None


def loads(text: str | bytes | None) -> Any:
    if text is None:
        return None
    return json.loads(text)


def jsonable(value: Any) -> Any:
    """The one conversion of djobs records to JSON-ready values, used by the CLI's `--json`, the web API
    and `Job.to_dict`: dataclasses become dicts, datetimes ISO-8601 (naive ones taken as UTC), enums their
    values, exceptions "Type: message", non-finite floats None, sets and tuples lists."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | deque):
        return [jsonable(v) for v in value]
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, BaseException):
        msg = str(value)
        return f"{type(value).__name__}: {msg}" if msg else type(value).__name__
    return repr(value)


def roundtrip(value: Any) -> Any:
    """What a value looks like after storage: results come back this way on first run and replay alike."""
    return loads(dumps(value))


def decode_as(value: Any, tp: Any) -> Any:
    """Decode a JSON value into the annotated type `tp` (dataclass, TypedDict, containers, scalars).

    Raises TypeError when the value does not fit, so a bad payload fails the job at once (never retried).
    """
    if tp is Any or tp is None or tp is dataclasses.MISSING or tp is typing.Any:
        return value
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise TypeError(f"{tp.__name__} expects a JSON object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = set(value) - names
        if unknown:
            raise TypeError(f"{tp.__name__} has no field(s) {', '.join(sorted(unknown))}")
        try:
            return tp(**{k: decode_as(v, hints.get(k, Any)) for k, v in value.items()})
        except TypeError as exc:
            raise TypeError(f"{tp.__name__}: {exc}") from None
    if typing.is_typeddict(tp):
        if not isinstance(value, dict):
            raise TypeError(f"{tp.__name__} expects a JSON object")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        last: Exception | None = None
        for a in args:
            if a is type(None):
                continue
            try:
                return decode_as(value, a)
            except TypeError as exc:
                last = exc
        raise TypeError(str(last))
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            raise TypeError(f"expected a JSON array, got {type(value).__name__}")
        (item,) = typing.get_args(tp) or (Any,)
        return [decode_as(v, item) for v in value]
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        kv = typing.get_args(tp)
        vt = kv[1] if len(kv) == 2 else Any
        return {k: decode_as(v, vt) for k, v in value.items()}
    if tp in (dict, list):
        if not isinstance(value, tp):
            raise TypeError(f"expected {tp.__name__}, got {type(value).__name__}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise TypeError(f"expected {tp.__name__}, got {type(value).__name__}")
        return value
    return value
