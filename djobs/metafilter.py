"""The `KEY=VALUE` words that pick jobs by their meta, as the dashboards read them.

    parse("tenant=42")        -> ("tenant", "42")     # the value as text: meta={"tenant": "42"}
    parse("count:=3")         -> ("count", 3)         # `:=` takes a JSON value: meta={"count": 3}
    parse_all("tenant=42 region=eu") -> {"tenant": "42", "region": "eu"}

The result is what `queue.list_jobs(meta=...)` takes: jobs whose meta holds each pair. Text by default
because meta set on the command line (`--meta k=v`) is text; `:=` reaches values written from Python.
"""

from __future__ import annotations

import json
from typing import Any

from djobs import validate

SYNTAX = "KEY=VALUE (VALUE as text) or KEY:=JSON"


def parse(word: str) -> tuple[str, Any]:
    """One `KEY=VALUE` or `KEY:=JSON` word; ValueError naming what is wrong."""
    key, sep, value = word.partition("=")
    if not sep or not key or key == ":":
        raise ValueError(f"meta filter {word[:60]!r} must be {SYNTAX}")
    if key.endswith(":"):
        key = key[:-1]
        try:
            decoded: Any = json.loads(value)
        except ValueError:
            raise ValueError(f"meta filter {key[:60]!r}: {value[:60]!r} is not JSON (write {key}={value} for text)") from None
        validate.depth("meta filter value", decoded)
    else:
        validate.name("meta filter value", value)
        decoded = value
    validate.name("meta key", key)
    return key, decoded


def parse_all(text: str) -> dict[str, Any]:
    """Space-separated words, each `KEY=VALUE` or `KEY:=JSON`; {} for empty text."""
    return dict(parse(word) for word in text.split())
